"""The models the CLI can name, and building one from `--param KEY=VALUE` options."""

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
from nextbest.models.popularity import MostPopular, SessionPopular

# The CLI is the one place where a model is picked by its name.
MODELS: dict[str, type[SessionModel[Any, Any]]] = {
    model.name: model
    for model in (
        MostPopular,
        SessionPopular,
        CoVisitation,
        SKNN,
        VSKNN,
        STAN,
        VSTAN,
        GRU4Rec,
        HGRU4Rec,
    )
}


def parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param takes KEY=VALUE, got {pair!r}")
        params[key.strip()] = value.strip()
    return params


def build_model(name: str, params: dict[str, str]) -> SessionModel[Any, Any]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    model_class = MODELS[name]
    return model_class(parse_config(model_class.config_class, params))
