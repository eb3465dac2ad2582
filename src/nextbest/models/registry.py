"""The models nextbest can train and serve, by name: the one place that names them.

The CLI picks a model by `--model NAME`, a model folder says its name in `model.json`, and the
server loads a version with the class of that name. A new model is added here only.
"""

from __future__ import annotations

from typing import Any

from nextbest.models.base import SessionModel, parse_config
from nextbest.models.covisit import CoVisitation
from nextbest.models.gru4rec import GRU4Rec
from nextbest.models.hgru4rec import HGRU4Rec
from nextbest.models.knn.sknn import SKNN
from nextbest.models.knn.stan import STAN
from nextbest.models.knn.vsknn import VSKNN
from nextbest.models.knn.vstan import VSTAN
from nextbest.models.popularity import CategoryPopular, MostPopular, SessionPopular
from nextbest.models.sasrec import SASRec
from nextbest.models.srgnn import SRGNN

MODELS: dict[str, type[SessionModel[Any, Any]]] = {
    model.name: model
    for model in (
        MostPopular,
        SessionPopular,
        CategoryPopular,
        CoVisitation,
        SKNN,
        VSKNN,
        STAN,
        VSTAN,
        GRU4Rec,
        HGRU4Rec,
        SRGNN,
        SASRec,
    )
}


def build_model(name: str, params: dict[str, str]) -> SessionModel[Any, Any]:
    """A model of class `name`, configured from `KEY=VALUE` strings; ValueError names a bad one."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    model_class = MODELS[name]
    return model_class(parse_config(model_class.config_class, params))
