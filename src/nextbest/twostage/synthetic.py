"""Synthetic `RankingData` with a planted click signal, for tests and benchmarks of rankers.

The click probability of a row is sigmoid(latent) with the latent made of parts a ranker can
find: an item's own appeal, a planted transition (each item has a few successors that are
clicked far more often right after it), a cart effect (the item just carted is clicked again),
a linear feature, a threshold feature, a feature whose missingness matters, and an interaction
of two features. Two more features are noise.
"""

from __future__ import annotations

import numpy as np

from nextbest.twostage.data import CART, PAD, PURCHASE, VIEW, History, RankingData

NAMES = ("linear", "threshold", "missing", "inter_a", "inter_b", "noise_a", "noise_b", "pop")


def planted_ranking_data(
    n_cases: int = 2000,
    n_items: int = 300,
    candidates: tuple[int, int] = (20, 40),
    width: int = 5,
    successors: int = 3,
    seed: int = 0,
    world_seed: int = 12345,
) -> RankingData:
    """`n_cases` cases of `candidates` rows each (a uniform size in the range). The planted
    world (item appeal, successors) comes from `world_seed`, so train and test drawn with
    different `seed`s share it."""
    world = np.random.default_rng(world_seed)
    appeal = world.normal(0.0, 1.0, n_items)
    follows = world.integers(0, n_items, (n_items, successors))
    rng = np.random.default_rng(seed)

    sizes = rng.integers(candidates[0], candidates[1] + 1, n_cases)
    case = np.repeat(np.arange(n_cases), sizes)
    n = len(case)
    h_items = rng.integers(0, n_items, (n_cases, width))
    h_types = rng.choice(np.array([VIEW, VIEW, VIEW, CART, PURCHASE], np.int8), (n_cases, width))
    pad = rng.integers(0, width + 1, n_cases)  # how many leading slots are padding
    padded = np.arange(width)[None, :] < pad[:, None]
    padded[pad == width, :] = True
    padded[rng.random(n_cases) < 0.9, -1] = False  # most cases have a last action
    h_items[padded] = -1
    h_types[padded] = PAD
    age = np.where(padded, 0.0, rng.exponential(300.0, (n_cases, width))).astype(np.float32)
    last = h_items[case, -1]
    last_type = h_types[case, -1]

    # candidates: a mix of random items, the last item's successors and the last item itself
    item = rng.integers(0, n_items, n)
    has_last = last >= 0
    pick = rng.random(n)
    succ = follows[np.maximum(last, 0), rng.integers(0, successors, n)]
    item = np.where(has_last & (pick < 0.15), succ, item)
    item = np.where(has_last & (pick > 0.97), last, item)

    features = rng.normal(0.0, 1.0, (n, len(NAMES))).astype(np.float32)
    missing = rng.random(n) < 0.25
    features[missing, 2] = np.nan
    features[:, 7] = (appeal[item] + rng.normal(0.0, 1.0, n)).astype(np.float32)

    is_successor = (follows[np.maximum(last, 0)] == item[:, None]).any(axis=1) & has_last
    latent = (
        -3.0
        + 0.6 * appeal[item]
        + 2.0 * is_successor
        + 2.0 * ((last_type == CART) & (item == last))
        + 0.8 * features[:, 0]
        + 1.0 * (np.abs(features[:, 1]) > 1.0)
        + 0.8 * missing
        + 0.8 * np.sign(features[:, 3] * features[:, 4])
    )
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-latent))).astype(np.float32)
    return RankingData(
        case=case.astype(np.int64),
        item=item.astype(np.int64),
        features=features,
        names=NAMES,
        groups={"synthetic": NAMES},
        label=label,
        session=np.arange(n_cases, dtype=np.int64),
        history=History(h_items.astype(np.int64), h_types, age),
        n_items=n_items,
    )
