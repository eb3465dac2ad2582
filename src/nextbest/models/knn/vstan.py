"""V-STAN: STAN plus V-SKNN's idf weighting and sequence-aware scoring (Ludewig et al., 2021).

Neighbours and similarities are STAN's (position decay lambda_spw inside the session, recency
decay lambda_snh in days, `k` best of the `sample_size` most recent candidates). Each distinct
item i of neighbour c votes

    sim(s, c) * exp(-|p - p*| / lambda_inh) * (1 + lambda_idf * idf(i)) * w(d)

where p, p* are STAN's positions inside c, and d = 1 + the number of events of s after its most
recent event whose item is in c (V-SKNN's d). w(d) = 1 / d (V-SKNN's `div` scoring) when
lambda_ipw is None, else exp(-(d - 1) / lambda_ipw). Any lambda set to None switches its factor
off (lambda_idf: 0 does too).

Defaults (our choice, in the region Ludewig et al. 2021 found best for e-commerce, not tuned on
our test splits): k = 1500, sample_size = 2500, lambda_spw = 0.905, lambda_snh = 100 days,
lambda_inh = 0.905, lambda_ipw = None (1 / d), lambda_idf = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.models.knn.base import (
    SessionKNN,
    check_positive,
    check_positive_int,
    latest_shared,
)
from nextbest.models.knn.stan import STANConfig, stan_neighbours


@dataclass(frozen=True)
class VSTANConfig:
    k: int = 1500  # neighbours that vote
    sample_size: int = 2500  # most recent candidates considered; 0 = all
    lambda_spw: float | None = 0.905  # position decay inside the current session (events)
    lambda_snh: float | None = 100.0  # recency decay of neighbours (days)
    lambda_inh: float | None = 0.905  # decay around p* inside a neighbour (events)
    lambda_ipw: float | None = None  # decay of a neighbour's vote with d; None: 1 / d
    lambda_idf: float = 1.0  # votes times (1 + lambda_idf * idf(i)); 0 switches idf off

    def __post_init__(self) -> None:
        check_positive_int("k", self.k)
        check_positive_int("sample_size", self.sample_size, allow_zero=True)
        for name in ("lambda_spw", "lambda_snh", "lambda_inh", "lambda_ipw"):
            check_positive(name, getattr(self, name), allow_none=True)
        if not isinstance(self.lambda_idf, int | float) or not self.lambda_idf >= 0:
            raise ValueError(f"lambda_idf must be a number >= 0, not {self.lambda_idf!r}")

    def stan(self) -> STANConfig:
        return STANConfig(
            k=self.k,
            sample_size=self.sample_size,
            lambda_spw=self.lambda_spw,
            lambda_snh=self.lambda_snh,
            lambda_inh=self.lambda_inh,
        )


class VSTAN(SessionKNN[VSTANConfig]):
    name = "vstan"
    config_class = VSTANConfig

    def votes(self, sequence: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        index, config = self.fitted_index(), self.config
        near, found, last, votes = stan_neighbours(index, sequence, now, config.stan())
        votes = votes * (1.0 + config.lambda_idf * index.idf[near.items])
        latest = latest_shared(found, last[found.group])[near.chosen]  # [k'] 1-based
        d = (len(sequence) - latest + 1).astype(np.float64)  # [k'] >= 1
        position = 1.0 / d if config.lambda_ipw is None else np.exp(-(d - 1) / config.lambda_ipw)
        return near.items, votes * position[near.owner]
