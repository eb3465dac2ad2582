"""FTRL-Proximal logistic regression over hashed binary tokens (McMahan et al., KDD 2013).

Every row of `RankingData` becomes the same number of binary tokens, one per *field*:

    bias                      one token every row shares
    f:<name>                  the quantile bucket of each numeric feature (edges learned at fit;
                              NaN is a bucket of its own)
    item, last                the candidate item; the last item of the shopper's history (-1: none)
    last*item, type*item      the last item crossed with the candidate; the last action type
                              crossed with the candidate
    x:<a>*<b>                 pairs of feature buckets: the `cross_top` features whose values
                              separate the labels best at fit, crossed pairwise, plus any
                              `feature_pairs` named in the config

A token (field, a, b) goes to one of 2**bits weight slots by a fixed integer mix, splitmix64's
finaliser of seed ^ a * golden ^ b * M with the seed a blake2b digest of the field's name, so
the slots are the same in every process (Python's `hash()` is salted per process and never
used). Buckets come from one sorted search of (feature, value) keys among (feature, edge) keys.
Tokens are computed by a numba kernel row by row (`_chunk_tokens` is the same in numpy, the
definition it is tested against); the per-coordinate FTRL-Proximal update runs in numba, on z
and n stored side by side (one cache line per token):

    p = sigmoid(sum_i w_i)       g = p - y         sigma_i = (sqrt(n_i + g^2) - sqrt(n_i)) / alpha
    z_i += g - sigma_i w_i       n_i += g^2
    w_i = 0 if |z_i| <= l1 else -(z_i - sign(z_i) l1) / ((beta + sqrt(n_i)) / alpha + l2)

`fit` trains `epochs` passes (shuffled rows) from scratch; `update` is online learning, one pass
over the rows in their order (a served list with its outcome). `predict` returns logits.
`save` writes the touched slots as .npz (no pickle) beside a JSON with the config and the
sha256 of every array, and `load` refuses a file that is truncated or fails its checksum.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Self

import numba
import numpy as np

from nextbest.twostage.data import PAD, RankingData, largest_contributions
from nextbest.twostage.metrics import auc

FORMAT = "nextbest.ftrl/1"
STATE_FILE = "ftrl_state.npz"
META_FILE = "ftrl.json"
CROSSES = ("last*item", "type*item")  # the history crosses `FTRLConfig.crosses` may name
NAN_BUCKET = -1


@dataclass(frozen=True)
class FTRLConfig:
    alpha: float = 0.1  # per-coordinate learning rate scale
    beta: float = 1.0  # smoothing of the learning rate's start
    l1: float = 1.0  # lambda1: sparsity
    l2: float = 1.0  # lambda2
    bits: int = 20  # 2**bits hashed weight slots
    bins: int = 16  # quantile buckets per numeric feature (fewer when values repeat)
    epochs: int = 2  # passes of `fit` (the best on `valid` is kept when fit has one)
    shuffle: bool = True  # shuffle the rows every epoch of `fit` (`update` keeps their order)
    seed: int = 0
    crosses: tuple[str, ...] = CROSSES  # history crosses, of CROSSES
    cross_top: int = 4  # the most label-separating features, crossed pairwise at fit
    feature_pairs: tuple[tuple[str, str], ...] = ()  # more feature crosses, by name

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 30:
            raise ValueError(f"FTRLConfig: bits {self.bits} outside 1..30")
        if self.alpha <= 0 or self.beta < 0 or self.l1 < 0 or self.l2 < 0:
            raise ValueError("FTRLConfig: alpha > 0 and beta, l1, l2 >= 0")
        if self.bins < 2 or self.epochs < 1 or self.cross_top < 0:
            raise ValueError("FTRLConfig: bins >= 2, epochs >= 1, cross_top >= 0")
        unknown = set(self.crosses) - set(CROSSES)
        if unknown:
            raise ValueError(f"FTRLConfig: unknown crosses {sorted(unknown)} (of {CROSSES})")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FTRLConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"FTRLConfig: unknown keys {sorted(unknown)}")
        values = dict(values)
        if "crosses" in values:
            values["crosses"] = tuple(values["crosses"])
        if "feature_pairs" in values:
            values["feature_pairs"] = tuple(tuple(p) for p in values["feature_pairs"])
        return cls(**values)


# ---------------------------------------------------------------- hashing (process-independent)

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray, tmp: np.ndarray) -> None:
    """splitmix64's finaliser, in place on uint64 (wrapping arithmetic); `tmp` is scratch."""
    np.right_shift(x, np.uint64(30), out=tmp)
    x ^= tmp
    x *= _M1
    np.right_shift(x, np.uint64(27), out=tmp)
    x ^= tmp
    x *= _M2
    np.right_shift(x, np.uint64(31), out=tmp)
    x ^= tmp


def field_seed(name: str) -> np.uint64:
    """A field's 64-bit seed: blake2b of its name (the same in every process)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def hash_tokens(seeds: np.ndarray, a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """[N, K] slots of the tokens (field k, values a[:, k], b[:, k]) of N rows: int32 in
    [0, 2**bits). slot = mix(seed_k ^ a * golden ^ b * M2) mod 2**bits."""
    h = np.asarray(a, dtype=np.int64).view(np.uint64) * _GOLDEN
    tmp = np.asarray(b, dtype=np.int64).view(np.uint64) * _M2
    h ^= tmp
    h ^= np.asarray(seeds, dtype=np.uint64)[None, :]
    _mix(h, tmp)
    h &= np.uint64((1 << bits) - 1)
    return h.astype(np.int32)


def sortable(values: np.ndarray) -> np.ndarray:
    """int64 keys of float32 values in the same order (-0.0 as 0.0; NaN: meaningless)."""
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0.0)).view(np.int32)
    keys = bits.astype(np.int64)
    return np.where(keys < 0, keys ^ 0x7FFFFFFF, keys)


# ---------------------------------------------------------------- the FTRL kernels (numba)


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(seed: np.uint64, a: np.int64, b: np.int64, mask: np.uint64) -> np.int32:
    """One token's slot: the same as `hash_tokens` for one (field, a, b)."""
    h = np.uint64(a) * _GOLDEN
    h ^= np.uint64(b) * _M2
    h ^= seed
    h ^= h >> np.uint64(30)
    h *= _M1
    h ^= h >> np.uint64(27)
    h *= _M2
    h ^= h >> np.uint64(31)
    return np.int32(h & mask)


@numba.njit(cache=True, nogil=True)
def _tokens_kernel(
    values: np.ndarray,
    item: np.ndarray,
    last_item: np.ndarray,
    last_type: np.ndarray,
    edges: np.ndarray,
    first_edge: np.ndarray,
    edge_counts: np.ndarray,
    seeds: np.ndarray,
    pair_a: np.ndarray,
    pair_b: np.ndarray,
    cross_last: np.ndarray,
    bits: int,
) -> np.ndarray:
    """[N, K] slots of every row's tokens, field after field as `FTRLRanker._field_names`
    lists them; the same slots as the numpy path (`hash_tokens` over `_chunk_tokens`'s
    values), one row at a time: what an online update of a short list needs."""
    n_rows, n_features = values.shape
    out = np.empty((n_rows, len(seeds)), dtype=np.int32)
    buckets = np.empty(n_features, dtype=np.int64)
    mask = np.uint64((1 << bits) - 1)
    for r in range(n_rows):
        for f in range(n_features):
            v = values[r, f]
            if np.isnan(v):
                buckets[f] = NAN_BUCKET
            else:
                start = first_edge[f]
                buckets[f] = np.searchsorted(edges[start : start + edge_counts[f]], v, side="right")
        out[r, 0] = _slot(seeds[0], np.int64(0), np.int64(0), mask)
        for f in range(n_features):
            out[r, 1 + f] = _slot(seeds[1 + f], buckets[f], np.int64(0), mask)
        k = 1 + n_features
        out[r, k] = _slot(seeds[k], np.int64(item[r]), np.int64(0), mask)
        out[r, k + 1] = _slot(seeds[k + 1], np.int64(last_item[r]), np.int64(0), mask)
        k += 2
        for c in range(len(cross_last)):
            a = np.int64(last_item[r]) if cross_last[c] else np.int64(last_type[r])
            out[r, k] = _slot(seeds[k], a, np.int64(item[r]), mask)
            k += 1
        for p in range(len(pair_a)):
            out[r, k] = _slot(seeds[k], buckets[pair_a[p]], buckets[pair_b[p]], mask)
            k += 1
    return out


@numba.njit(cache=True, nogil=True)
def _train(
    tokens: np.ndarray,
    labels: np.ndarray,
    order: np.ndarray,
    zn: np.ndarray,
    alpha: float,
    beta: float,
    l1: float,
    l2: float,
) -> float:
    """One pass of FTRL-Proximal over rows `order` (in that order) on the state `zn` [slots, 2]
    (z and n side by side: one cache line per token); returns the summed log loss of the
    predictions made before each update (progressive validation)."""
    k_tokens = tokens.shape[1]
    w = np.empty(k_tokens)
    root = np.empty(k_tokens)
    loss = 0.0
    for r in order:
        s = 0.0
        for k in range(k_tokens):
            i = tokens[r, k]
            z = zn[i, 0]
            root[k] = np.sqrt(zn[i, 1])
            if abs(z) <= l1:
                w[k] = 0.0
            else:
                w[k] = -(z - (l1 if z > 0 else -l1)) / ((beta + root[k]) / alpha + l2)
            s += w[k]
        s = min(max(s, -35.0), 35.0)
        p = 1.0 / (1.0 + np.exp(-s))
        y = labels[r]
        loss -= np.log(p) if y > 0.5 else np.log(1.0 - p)
        g = p - y
        g2 = g * g
        for k in range(k_tokens):
            i = tokens[r, k]
            n_new = zn[i, 1] + g2
            sigma = (np.sqrt(n_new) - root[k]) / alpha
            zn[i, 0] += g - sigma * w[k]
            zn[i, 1] = n_new
    return loss


@numba.njit(cache=True, nogil=True)
def _logits(
    tokens: np.ndarray, zn: np.ndarray, alpha: float, beta: float, l1: float, l2: float
) -> np.ndarray:
    out = np.empty(tokens.shape[0])
    for r in range(tokens.shape[0]):
        s = 0.0
        for k in range(tokens.shape[1]):
            i = tokens[r, k]
            z = zn[i, 0]
            if abs(z) > l1:
                s -= (z - (l1 if z > 0 else -l1)) / ((beta + np.sqrt(zn[i, 1])) / alpha + l2)
        out[r] = s
    return out


# ---------------------------------------------------------------- the ranker


def _array_sha256(array: np.ndarray) -> str:
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _separation(values: np.ndarray, labels: np.ndarray) -> float:
    """|AUC - 0.5| of one feature against the labels (NaN as the median)."""
    ok = np.isfinite(values)
    if ok.sum() < 2:
        return 0.0
    values = np.where(ok, values, np.median(values[ok]))
    separation = auc(labels, values)  # NaN without both classes
    return 0.0 if np.isnan(separation) else abs(separation - 0.5)


@dataclass(frozen=True)
class _Layout:
    feature_offset: np.ndarray  # [1, F] int64: feature f's keys are f * 2**33 + sortable
    edge_keys: np.ndarray  # [sum of edges] the keys of all features' edges, ascending
    first_edge: np.ndarray  # [1, F] where each feature's edges start in edge_keys
    pair_a: np.ndarray  # [P] the first feature of each crossed pair
    pair_b: np.ndarray  # [P] the second


class FTRLRanker:
    """FTRL-Proximal logistic regression on hashed tokens of `RankingData` (see module doc)."""

    name = "ftrl"

    def __init__(self, config: FTRLConfig | None = None) -> None:
        self.config = config or FTRLConfig()
        self.reset()

    # ------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget everything learned: the weights, the bucket edges and the chosen crosses."""
        size = 1 << self.config.bits
        self.zn = np.zeros((size, 2))  # z and n of every slot, side by side
        self.feature_names: tuple[str, ...] = ()
        self.edges: list[np.ndarray] = []
        self.pairs: tuple[tuple[str, str], ...] = ()
        self.rows_seen = 0
        # bucket edges and crosses chosen, by fit, update or load (there may be no feature)
        self.layout_learned = False
        self._set_seeds()

    @property
    def z(self) -> np.ndarray:
        return self.zn[:, 0]

    @property
    def n(self) -> np.ndarray:
        return self.zn[:, 1]

    @property
    def fitted(self) -> bool:
        return self.layout_learned  # every way to learn rows learns the layout first

    def _learn_layout(self, data: RankingData) -> None:
        """Bucket edges of every feature and the crossed feature pairs, from `data`."""
        config = self.config
        self.feature_names = tuple(data.names)
        levels = np.arange(1, config.bins) / config.bins
        self.edges = []
        for j in range(len(data.names)):
            column = data.features[:, j].astype(np.float64)
            finite = column[np.isfinite(column)]
            edges = np.unique(np.quantile(finite, levels)) if len(finite) else np.zeros(0)
            # float32 edges, as the features are: no conversion when bucketing
            self.edges.append(np.unique(edges.astype(np.float32)))
        pairs: list[tuple[str, str]] = []
        if config.cross_top >= 2 and data.label is not None and len(data.names) >= 2:
            rng = np.random.default_rng(config.seed)
            sample = (
                rng.choice(len(data), 200_000, replace=False)
                if len(data) > 200_000
                else np.arange(len(data))
            )
            labels = data.label[sample]
            score = [
                _separation(data.features[sample, j].astype(np.float64), labels)
                for j in range(len(data.names))
            ]
            top = [data.names[j] for j in np.argsort(score)[::-1][: config.cross_top]]
            pairs = [(a, b) for i, a in enumerate(top) for b in top[i + 1 :]]
        for a, b in config.feature_pairs:
            for name in (a, b):
                if name not in data.names:
                    raise ValueError(f"FTRLRanker: feature_pairs names {name!r}, not a feature")
            if (a, b) not in pairs:
                pairs.append((a, b))
        self.pairs = tuple(pairs)
        self.layout_learned = True
        self._set_seeds()

    def _field_names(self) -> list[str]:
        return [
            "bias",
            *(f"f:{name}" for name in self.feature_names),
            "item",
            "last",
            *self.config.crosses,
            *(f"x:{a}*{b}" for a, b in self.pairs),
        ]

    def _set_seeds(self) -> None:
        """What tokens need ready: the fields' seeds, the edges padded to one matrix, the
        columns of the crossed pairs."""
        self._seeds = np.array([field_seed(f) for f in self._field_names()], dtype=np.uint64)
        offset = (np.arange(len(self.edges), dtype=np.int64) << 33)[None, :]
        edge_keys = [sortable(e) + offset[0, f] for f, e in enumerate(self.edges)]
        counts = np.array([len(e) for e in self.edges], dtype=np.int64)
        position = {name: f for f, name in enumerate(self.feature_names)}
        # what the numba kernel reads, ready once rather than at every call (every request)
        self._flat_edges = (
            np.concatenate(self.edges).astype(np.float32) if self.edges else np.zeros(0, np.float32)
        )
        self._edge_counts = counts
        self._cross_last = np.array([c == "last*item" for c in self.config.crosses], np.bool_)
        self._layout = _Layout(
            feature_offset=offset,
            edge_keys=np.concatenate(edge_keys) if edge_keys else np.zeros(0, np.int64),
            first_edge=(np.cumsum(counts) - counts)[None, :],
            pair_a=np.array([position[a] for a, _ in self.pairs], dtype=np.int64),
            pair_b=np.array([position[b] for _, b in self.pairs], dtype=np.int64),
        )

    # ------------------------------------------------------------ tokens

    def tokens(self, data: RankingData, chunk: int = 4096) -> np.ndarray:
        """[N, K] int32 weight slots of every row's tokens (K = the number of fields),
        computed over blocks of `chunk` rows (the scratch stays in cache)."""
        if not self.fitted:
            raise ValueError("FTRLRanker: not fitted (fit or update first)")
        if data.names == self.feature_names:
            columns = None
        else:
            index = {name: j for j, name in enumerate(data.names)}
            missing = [name for name in self.feature_names if name not in index]
            if missing:
                raise ValueError(f"FTRLRanker: the data lacks the fitted features {missing}")
            columns = np.array([index[name] for name in self.feature_names], dtype=np.int64)
        if data.history is not None and data.history.width:
            last_item, last_type = data.history.items[:, -1], data.history.types[:, -1]
        else:
            last_item = np.full(data.n_cases, -1, np.int64)
            last_type = np.full(data.n_cases, PAD, np.int8)
        n_rows = len(data)
        out = np.empty((n_rows, len(self._seeds)), dtype=np.int32)
        for start in range(0, n_rows, chunk):
            end = min(start + chunk, n_rows)
            values = data.features[start:end]
            if columns is not None:
                values = values[:, columns]
            case = data.case[start:end]
            out[start:end] = self._kernel_tokens(
                values, data.item[start:end], last_item[case], last_type[case]
            )
        return out

    def _kernel_tokens(
        self, values: np.ndarray, item: np.ndarray, last_item: np.ndarray, last_type: np.ndarray
    ) -> np.ndarray:
        """The same slots as `_chunk_tokens`, by the numba kernel (row by row)."""
        layout = self._layout
        result: np.ndarray = _tokens_kernel(
            np.ascontiguousarray(values, dtype=np.float32),
            np.ascontiguousarray(item, dtype=np.int64),
            np.ascontiguousarray(last_item, dtype=np.int64),
            np.ascontiguousarray(last_type, dtype=np.int64),
            self._flat_edges,
            layout.first_edge[0],
            self._edge_counts,
            self._seeds,
            layout.pair_a,
            layout.pair_b,
            self._cross_last,
            self.config.bits,
        )
        return result

    def _chunk_tokens(
        self, values: np.ndarray, item: np.ndarray, last_item: np.ndarray, last_type: np.ndarray
    ) -> np.ndarray:
        """The tokens in numpy, column by column: the readable definition that the numba
        kernel (`_kernel_tokens`, 4-9x faster, what `tokens` uses) is tested against."""
        layout = self._layout
        n_features = len(self.feature_names)
        # the bucket of each value: how many of its feature's edges are <= it, by one search of
        # the keys (feature, value) among the keys (feature, edge); NaN values apart
        keys = sortable(values) + layout.feature_offset
        buckets = np.searchsorted(layout.edge_keys, keys, side="right") - layout.first_edge
        buckets[np.isnan(values)] = NAN_BUCKET
        a = np.zeros((len(item), len(self._seeds)), dtype=np.int64)
        b = np.zeros_like(a)
        a[:, 1 : 1 + n_features] = buckets
        a[:, 1 + n_features] = item
        a[:, 2 + n_features] = last_item
        k = 3 + n_features
        for cross in self.config.crosses:
            a[:, k] = last_item if cross == "last*item" else last_type
            b[:, k] = item
            k += 1
        a[:, k:] = buckets[:, layout.pair_a]
        b[:, k:] = buckets[:, layout.pair_b]
        return hash_tokens(self._seeds, a, b, self.config.bits)

    # ------------------------------------------------------------ learning

    def _pass(self, tokens: np.ndarray, labels: np.ndarray, order: np.ndarray) -> float:
        c = self.config
        loss = _train(tokens, labels, order, self.zn, c.alpha, c.beta, c.l1, c.l2)
        self.rows_seen += len(order)
        return float(loss)

    @staticmethod
    def _labels(data: RankingData, what: str) -> np.ndarray:
        if data.label is None:
            raise ValueError(f"FTRLRanker.{what}: the data has no labels")
        return np.ascontiguousarray(data.label, dtype=np.float64)

    def fit(self, train: RankingData, valid: RankingData | None = None) -> Self:
        """`epochs` passes from scratch; with a labelled `valid`, the epoch of the lowest log
        loss on it is kept (and training stops at the first epoch that does worse)."""
        labels = self._labels(train, "fit")
        self.reset()
        self._learn_layout(train)
        tokens = self.tokens(train)
        check = valid is not None and valid.label is not None and len(valid) > 0
        valid_tokens = self.tokens(valid) if check and valid is not None else None
        best: tuple[float, np.ndarray, int] | None = None
        rng = np.random.default_rng(self.config.seed)
        self.train_loss: list[float] = []
        self.valid_loss: list[float] = []
        for _ in range(self.config.epochs):
            order = rng.permutation(len(train)) if self.config.shuffle else np.arange(len(train))
            self.train_loss.append(self._pass(tokens, labels, order) / max(len(train), 1))
            if valid_tokens is not None and valid is not None and valid.label is not None:
                loss = _log_loss(valid.label, self._predict_tokens(valid_tokens))
                self.valid_loss.append(loss)
                if best is not None and loss >= best[0]:
                    _, self.zn, self.rows_seen = best
                    break
                best = (loss, self.zn.copy(), self.rows_seen)
        return self

    def update(self, data: RankingData) -> Self:
        """Online learning: one FTRL pass over the labelled rows in their order (the served
        lists with their outcomes). An unfitted ranker takes its buckets from this first data."""
        labels = self._labels(data, "update")
        if not self.fitted:
            self._learn_layout(data)
        tokens = self.tokens(data)
        self._pass(tokens, labels, np.arange(len(data)))
        return self

    # ------------------------------------------------------------ scoring

    def _predict_tokens(self, tokens: np.ndarray) -> np.ndarray:
        c = self.config
        result: np.ndarray = _logits(tokens, self.zn, c.alpha, c.beta, c.l1, c.l2)
        return result

    def predict(self, data: RankingData) -> np.ndarray:
        """[N] float64 logits (sigmoid them for click probabilities)."""
        return self._predict_tokens(self.tokens(data))

    def predict_proba(self, data: RankingData) -> np.ndarray:
        result: np.ndarray = 1.0 / (1.0 + np.exp(-self.predict(data)))
        return result

    def explain(
        self, data: RankingData, rows: np.ndarray, top: int = 3
    ) -> list[list[tuple[str, float]]]:
        """Per row: the `top` token fields with the largest weights in its logit (a logistic
        model's logit is the sum of its tokens' weights; positive moved the item up)."""
        if not len(rows):
            return []
        contributions = self.weights()[self.tokens(data.take(np.asarray(rows)))]  # [r, K]
        return largest_contributions(contributions, self._field_names(), top)

    def weights(self) -> np.ndarray:
        """[2**bits] the current weights of all slots."""
        c = self.config
        shrunk = np.maximum(np.abs(self.z) - c.l1, 0.0)
        result: np.ndarray = (
            -np.sign(self.z) * shrunk / ((c.beta + np.sqrt(self.n)) / c.alpha + c.l2)
        )
        return result

    # ------------------------------------------------------------ persistence

    def _arrays(self) -> dict[str, np.ndarray]:
        touched = np.flatnonzero((self.n != 0) | (self.z != 0)).astype(np.int64)
        lengths = np.array([len(e) for e in self.edges], dtype=np.int64)
        return {
            "slots": touched,
            "z": self.z[touched],
            "n": self.n[touched],
            "edges": np.concatenate(self.edges) if self.edges else np.zeros(0),
            "edge_counts": lengths,
        }

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = self._arrays()
        np.savez(folder / STATE_FILE, allow_pickle=False, **arrays)  # type: ignore[arg-type]
        meta = {
            "format": FORMAT,
            "name": self.name,
            "config": asdict(self.config),
            "feature_names": list(self.feature_names),
            "pairs": [list(p) for p in self.pairs],
            "rows_seen": self.rows_seen,
            "state_file": STATE_FILE,
            "arrays": {
                key: {"sha256": _array_sha256(a), "dtype": a.dtype.str, "shape": list(a.shape)}
                for key, a in arrays.items()
            },
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")

    @classmethod
    def load(cls, folder: Path) -> Self:
        """The ranker `save` wrote; a missing, truncated or altered file is a ValueError that
        names the file and the problem."""
        folder = Path(folder)
        meta_path, state_path = folder / META_FILE, folder / STATE_FILE
        for path in (meta_path, state_path):
            if not path.is_file():
                raise ValueError(f"{path}: missing (not a saved FTRL ranker)")
        try:
            meta = json.loads(meta_path.read_text())
            config = FTRLConfig.from_dict(meta["config"])
            expected = meta["arrays"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{meta_path}: unreadable metadata ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        try:
            with np.load(state_path, allow_pickle=False) as z:
                arrays = {key: z[key] for key in z.files}
        except Exception as exc:  # a truncated zip, a bad CRC, a bad header: all refused
            raise ValueError(
                f"{state_path}: cannot be read, truncated or corrupt ({type(exc).__name__}: {exc})"
            ) from exc
        for key, want in expected.items():
            if key not in arrays:
                raise ValueError(f"{state_path}: array {key!r} is missing")
            got = _array_sha256(arrays[key])
            if got != want["sha256"]:
                raise ValueError(
                    f"{state_path}: array {key!r} fails its checksum (sha256 {got[:12]}..., "
                    f"{META_FILE} says {want['sha256'][:12]}...): the file is corrupt"
                )
        ranker = cls(config)
        slots = arrays["slots"]
        if len(slots) and (slots.min() < 0 or slots.max() >= len(ranker.zn)):
            raise ValueError(f"{state_path}: slots outside 2**{config.bits}")
        ranker.zn[slots, 0] = arrays["z"]
        ranker.zn[slots, 1] = arrays["n"]
        ranker.feature_names = tuple(meta["feature_names"])
        bounds = np.r_[0, np.cumsum(arrays["edge_counts"])]
        if len(ranker.feature_names) != len(arrays["edge_counts"]) or bounds[-1] != len(
            arrays["edges"]
        ):
            raise ValueError(f"{state_path}: bucket edges do not match the features")
        ranker.edges = [arrays["edges"][a:b] for a, b in itertools.pairwise(bounds)]
        ranker.pairs = tuple((str(a), str(b)) for a, b in meta["pairs"])
        ranker.rows_seen = int(meta["rows_seen"])
        ranker.layout_learned = True
        ranker._set_seeds()
        return ranker


def _log_loss(labels: np.ndarray, logits: np.ndarray) -> float:
    y = np.asarray(labels, dtype=np.float64)
    # log(1 + exp(-s)) for y=1, log(1 + exp(s)) for y=0, stably
    signed = np.where(y > 0.5, logits, -logits)
    return float(np.mean(np.logaddexp(0.0, -signed)))
