"""Serving's scorers live with the models (`nextbest.models.scoring`); kept importable here."""

from nextbest.models.scoring import (
    MAX_RESCORED,
    GRU4RecScorer,
    Int8Prescreen,
    Scorer,
    scorer_for,
    shared_array,
    top_n,
)

__all__ = [
    "MAX_RESCORED",
    "GRU4RecScorer",
    "Int8Prescreen",
    "Scorer",
    "scorer_for",
    "shared_array",
    "top_n",
]
