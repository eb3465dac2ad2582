"""STAN: sequence and time aware neighbourhood (Garg et al., SIGIR 2019).

For the current session s = (s_1 .. s_n) at time t_now (its latest event's timestamp):

* position weights: s_p weighs exp((p - n) / lambda_spw); a repeated item keeps the weight of
  its later position;
* similarity to a candidate c: the weighted cosine of V-SKNN (sum of the weights of shared
  items / (sqrt(sum of squared weights over s's distinct items) * sqrt(|c|))), times the
  recency decay exp(-(t_now - t_c) / lambda_snh), t_c = c's last timestamp, lambda_snh in days
  (times are read as seconds: 86,400 per day); the `k` most similar of the `sample_size` most
  recent candidates vote;
* scoring: in neighbour c as a sequence, p* is the position of its last element that also
  occurs in s; each distinct item of c, at the position p of its last occurrence in c, gets
  sim * exp(-|p - p*| / lambda_inh).

A lambda of None switches that factor off (weight 1). Items of s stay recommendable.
Anchor defaults: k = 1500, sample_size = 10000, lambda_spw = 0.5, lambda_snh = 5 days,
lambda_inh = 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.models.knn.base import (
    Neighbours,
    SessionKNN,
    check_positive,
    check_positive_int,
    cosine,
    latest_shared,
    neighbours,
)
from nextbest.models.knn.index import (
    Candidates,
    SessionIndex,
    candidates,
    last_positions,
    top_k,
)

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class STANConfig:
    k: int = 1500  # neighbours that vote
    sample_size: int = 10000  # most recent candidates considered; 0 = all
    lambda_spw: float | None = 0.5  # position decay inside the current session (events)
    lambda_snh: float | None = 5.0  # recency decay of neighbours (days)
    lambda_inh: float | None = 2.0  # decay around p* inside a neighbour (events)

    def __post_init__(self) -> None:
        check_positive_int("k", self.k)
        check_positive_int("sample_size", self.sample_size, allow_zero=True)
        for name in ("lambda_spw", "lambda_snh", "lambda_inh"):
            check_positive(name, getattr(self, name), allow_none=True)


def stan_neighbours(
    index: SessionIndex,
    sequence: np.ndarray,
    now: float,
    config: STANConfig,
) -> tuple[Neighbours, Candidates, np.ndarray, np.ndarray]:
    """The neighbours of one session with their STAN votes [m].

    Also returns the candidates and the session's distinct items' 1-based last positions [u],
    from which V-STAN derives its extra factors.
    """
    items, last = last_positions(sequence)  # [u], [u] 1-based
    weights = _decay(last - len(sequence), config.lambda_spw)  # [u] = 1 for the latest item
    found = candidates(index, items, config.sample_size)
    similarity = cosine(index, found, weights)  # [S]
    if config.lambda_snh is not None:
        age = now - index.session_times[found.sessions]  # [S] seconds
        similarity = similarity * np.exp(-age / (config.lambda_snh * SECONDS_PER_DAY))
    near = neighbours(index, found, top_k(similarity, config.k), similarity)
    votes = near.similarity[near.owner]  # [m]
    if config.lambda_inh is not None:
        p_star = latest_shared(found, found.pos)[near.chosen]  # [k'] position in the neighbour
        votes = votes * _decay(-np.abs(near.pos - p_star[near.owner]), config.lambda_inh)
    return near, found, last, votes


def _decay(exponent: np.ndarray, scale: float | None) -> np.ndarray:
    """exp(exponent / scale) (exponent <= 0), or ones when the factor is switched off."""
    if scale is None:
        return np.ones(exponent.shape)
    return np.exp(exponent / scale)


class STAN(SessionKNN[STANConfig]):
    name = "stan"
    config_class = STANConfig

    def votes(self, sequence: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        near, _, _, votes = stan_neighbours(self.fitted_index(), sequence, now, self.config)
        return near.items, votes
