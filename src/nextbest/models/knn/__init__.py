"""Session-kNN models: SKNN, V-SKNN, STAN and V-STAN over one shared training index."""

from nextbest.models.knn.sknn import SKNN, SKNNConfig
from nextbest.models.knn.stan import STAN, STANConfig
from nextbest.models.knn.vsknn import VSKNN, VSKNNConfig
from nextbest.models.knn.vstan import VSTAN, VSTANConfig

__all__ = [
    "SKNN",
    "STAN",
    "VSKNN",
    "VSTAN",
    "SKNNConfig",
    "STANConfig",
    "VSKNNConfig",
    "VSTANConfig",
]
