"""SR-GNN (Wu et al., AAAI 2019): a gated graph neural network over each session's item graph."""

from nextbest.models.srgnn.config import SRGNNConfig
from nextbest.models.srgnn.model import SRGNN

__all__ = ["SRGNN", "SRGNNConfig"]
