"""HGRU4Rec as a `SessionModel`: GRU4Rec's per-event step plus a user state per finished session.

    state = model.initial_state(1)                    # anonymous / unknown user: GRU4Rec
    state = model.step(state, items, times)           # per event: the session part moves
    scores = model.score(state)                       # [B, n_items]
    state = model.end_session(state)                  # session over: the user part moves and
                                                      # the next session starts from it
    model.warm_up(history, owned)                     # users' states after their past sessions

`as_gru4rec()` is the session path as a plain GRU4Rec: for a zero user state (no user id, an
unknown user, a user's first session) HGRU4Rec's scores are exactly its scores.

With `user_level="auto"` (the default) `fit` first chooses the user level on a validation
split of the training data (`selection.py`), then trains the choice on all of it: `config`
becomes the config actually trained (user_level "on" or "off"), and `user_level_choice` says
what was chosen and why, with the validation figures (saved in model.json). With
`user_level="off"` the model is GRU4Rec: trained without the user ids, its user state stays
zero.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from nextbest.data.sessions import Sessions
from nextbest.events.schema import Item
from nextbest.models.base import MODEL_FILE, NotFittedError, SessionModel
from nextbest.models.gru4rec import GRU4Rec
from nextbest.models.gru4rec.attributes import (
    AttributeIndex,
    clear_unseen,
    index_for,
    settle_unseen,
)
from nextbest.models.gru4rec.network import GRU4RecNet, with_hidden_biases
from nextbest.models.gru4rec.training import EpochStats, run_epochs, torch_threads
from nextbest.models.hgru4rec.batching import plan_users
from nextbest.models.hgru4rec.config import HGRU4RecConfig
from nextbest.models.hgru4rec.network import HGRU4RecNet
from nextbest.models.hgru4rec.selection import UserLevelChoice, choose_user_level, fixed_choice
from nextbest.models.hgru4rec.state import HState
from nextbest.models.hgru4rec.training import HierarchicalTrainer

logger = logging.getLogger(__name__)

WARM_UP_BATCH = 1024  # users whose histories are replayed together


class HGRU4Rec(SessionModel[HState, HGRU4RecConfig]):
    name = "hgru4rec"
    config_class = HGRU4RecConfig

    def __init__(self, config: HGRU4RecConfig | None = None) -> None:
        super().__init__(config)
        self.net: HGRU4RecNet | None = None
        self.history: list[EpochStats] = []
        self.fit_seconds = 0.0
        self.requested = self.config  # what was asked for; `config` is what was trained
        self.user_level_choice: UserLevelChoice | None = None
        self.catalog: Mapping[str, Item] | None = None  # read by fit when attributes are on
        self.attribute_values: np.ndarray | None = None  # [V] "kind=value" of the fitted net

    def use_catalog(self, items: Mapping[str, Item]) -> None:
        """The catalog whose attributes `fit` embeds (with `config.attributes` set), as
        GRU4Rec's; the candidates of the user-level choice are fitted with it too."""
        self.catalog = items

    # -- training ---------------------------------------------------------------------------
    def fit(self, train: Sessions) -> Self:
        with torch_threads(self.config.threads):
            return self._fit(train)

    def _fit(self, train: Sessions) -> Self:
        started = time.perf_counter()
        if train.n_sessions == 0:
            raise ValueError("no training session: nothing to learn")
        asked = self.requested
        if asked.user_level == "auto" and asked.user_setting_is_default():
            fit = partial(_fit_candidate, catalog=self.catalog)
            self.config, choice = choose_user_level(asked, train, fit)
        else:
            self.config, choice = _resolved(asked), fixed_choice(asked)
        self._fit_setting(train)
        self.user_level_choice = choice
        logger.debug("hgru4rec %s", choice.summary())
        self.fit_seconds = time.perf_counter() - started
        return self

    def _fit_setting(self, train: Sessions) -> None:
        """Train `config` (user_level "on" or "off") on `train`."""
        if self.config.user_level == "off":  # GRU4Rec's fit: every session its own user
            train = replace(train, user_ids=None)
        self.item_ids = train.item_ids
        index = index_for(self.config, self.catalog, train.item_ids)
        self.net = HGRU4RecNet(train.n_items, self.config, index)
        support = train.item_support()
        unseen = clear_unseen(self.net, support)
        walk = plan_users(train, self.config.batch_size)
        if walk.n_batches == 0:
            raise ValueError("no training session has two or more events: nothing to learn")
        trainer = HierarchicalTrainer(
            self.net, self.config, support, walk.n_batches * self.config.n_epochs
        )
        self.history = run_epochs(
            "hgru4rec", self.config.n_epochs, lambda: trainer.epoch_users(walk, train.items)
        )
        settle_unseen(self.net, unseen, index)
        self.attribute_values = None if index is None else index.values

    @property
    def uses_users(self) -> bool:
        """False when the session path alone is trained and served (user_level "off")."""
        return self.config.user_level != "off"

    def fit_report(self) -> dict[str, Any]:
        """What `fit` decided, for the JSON record of an evaluation or a saved version."""
        choice = self.user_level_choice
        return {} if choice is None else {"user_level": choice.to_dict()}

    def fit_summary(self) -> str | None:
        """One line saying what `fit` decided (the user level and why)."""
        return None if self.user_level_choice is None else self.user_level_choice.summary()

    # -- answering --------------------------------------------------------------------------
    def initial_state(self, n: int) -> HState:
        """`n` visitors with no known past: anonymous, or users before their first session."""
        return HState(
            torch.zeros(n, sum(self.config.layers)),
            torch.zeros(n, self.config.user_layer),
            torch.zeros(n, dtype=torch.int64),
        )

    @torch.no_grad()
    def step(self, state: HState, items: np.ndarray, times: np.ndarray) -> HState:
        """One session step per visitor (items [B]); the user part does not move."""
        net = self._fitted()
        rows = net.input_table.index_select(0, torch.as_tensor(items, dtype=torch.int64))
        layers = list(torch.split(state.session, list(self.config.layers), dim=1))
        hidden = net.encode(rows, layers, extra_gates=net.user_gates(state.user))
        session = hidden[0] if len(hidden) == 1 else torch.cat(hidden, dim=1)
        return HState(session, state.user, state.sessions)

    def select(self, state: HState, rows: np.ndarray) -> HState:
        return state.select(torch.as_tensor(rows, dtype=torch.int64))

    @torch.no_grad()
    def score(self, state: HState, items: np.ndarray | None = None) -> np.ndarray:
        """[B, n_items] float32 raw output scores (or [B, len(items)] for `items`)."""
        net = self._fitted()
        last = state.session[:, state.session.shape[1] - self.config.layers[-1] :]
        index = None if items is None else torch.as_tensor(items, dtype=torch.int64)
        return net.score(net.output(last, state.user), index).numpy()

    @torch.no_grad()
    def end_session(self, state: HState) -> HState:
        """Close every session of the batch: the user GRU takes its final state, and a new
        session begins from the result (for a server: when a session expires or ends)."""
        net = self._fitted()
        final = state.session[:, state.session.shape[1] - self.config.layers[-1] :]
        # [B, U]; the session path alone ("off") keeps no user state
        user = net.user_step(final, state.user) if self.uses_users else torch.zeros_like(state.user)
        return self.start_session(HState(state.session, user, state.sessions + 1))

    @torch.no_grad()
    def start_session(self, state: HState) -> HState:
        """A fresh session for each user: tanh(W_init h_user + b_init), or zeros when the user
        has no finished session yet (anonymous, unknown, first visit). The user part is kept."""
        net = self._fitted()
        start = torch.cat(net.session_init(state.user), dim=1)  # [B, sum(H)]
        returning = (state.sessions > 0).unsqueeze(1) & self.uses_users  # [B, 1]
        session = torch.where(returning, start, torch.zeros_like(start))
        return HState(session, state.user, state.sessions)

    def warm_up(self, history: Sessions, owned: Sequence[np.ndarray]) -> HState:
        """The states of len(owned) users after their sessions `owned[b]` (indices into
        `history`, in time order), each ready to start a new session."""
        if not self.uses_users:  # what the replay gives: zero states, the sessions counted
            state = self.initial_state(len(owned))
            counts = [len(sessions) for sessions in owned]
            return HState(state.session, state.user, torch.tensor(counts, dtype=torch.int64))
        parts = [
            self._warm_block(history, owned[first : first + WARM_UP_BATCH])
            for first in range(0, len(owned), WARM_UP_BATCH)
        ]
        return HState.concat(parts) if parts else self.initial_state(0)

    def _warm_block(self, history: Sessions, owned: Sequence[np.ndarray]) -> HState:
        """Replay users side by side: per tick each feeds its next event or ends a session."""
        feeds = []  # per user: event indices, -1 = end of a session
        for sessions in owned:
            parts = [
                np.r_[np.arange(history.offsets[s], history.offsets[s + 1]), -1] for s in sessions
            ]
            feeds.append(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
        width = max((len(f) for f in feeds), default=0)
        ticks = np.full((len(owned), width), -2, dtype=np.int64)  # -2: nothing left
        for row, feed in enumerate(feeds):
            ticks[row, : len(feed)] = feed
        state = self.initial_state(len(owned))
        for t in range(width):
            column = ticks[:, t]
            if len(rows := np.flatnonzero(column >= 0)):
                events = column[rows]
                part = self.step(
                    self.select(state, rows), history.items[events], history.times[events]
                )
                state = state.put(torch.from_numpy(rows), part)
            if len(rows := np.flatnonzero(column == -1)):
                part = self.end_session(self.select(state, rows))
                state = state.put(torch.from_numpy(rows), part)
        return state

    def as_gru4rec(self) -> GRU4Rec:
        """The session path alone, as a GRU4Rec sharing these weights."""
        net = self._fitted()
        plain = GRU4Rec(self.config.session_config())
        plain.item_ids = self.item_ids
        plain.net = GRU4RecNet(self.n_items, plain.config)
        plain.net.load_state_dict(net.gru4rec_state_dict())
        plain.net.eval()
        return plain

    # -- persistence ------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """model.json also keeps the user-level choice, so a loaded model still says it."""
        super().save(folder)
        meta = json.loads((folder / MODEL_FILE).read_text())
        meta.update(self.fit_report())
        (folder / MODEL_FILE).write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder: Path) -> Self:
        model = super().load(folder)
        meta = json.loads((folder / MODEL_FILE).read_text())
        if "user_level" not in meta["config"]:  # saved before the choice: the user level as set
            model.config = model.requested = replace(model.config, user_level="on")
        raw = meta.get("user_level")
        model.user_level_choice = None if raw is None else UserLevelChoice.from_dict(raw)
        return model

    def arrays(self) -> dict[str, np.ndarray]:
        net = self._fitted()
        arrays = {f"net.{k}": v.detach().numpy().copy() for k, v in net.state_dict().items()}
        if self.attribute_values is not None:
            arrays["attribute_values"] = self.attribute_values.astype(str)
        return arrays

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        index = None
        if "attribute_values" in arrays:
            self.attribute_values = arrays.pop("attribute_values").astype(str)
            index = AttributeIndex(
                self.attribute_values,
                arrays["net.attributes.slots"],
                arrays["net.attributes.weights"],
            )
        net = HGRU4RecNet(self.n_items, self.config, index)
        net.load_state_dict(
            with_hidden_biases(
                {k.removeprefix("net."): torch.from_numpy(v) for k, v in arrays.items()}
            )
        )
        net.eval()
        self.net = net

    def _fitted(self) -> HGRU4RecNet:
        if self.net is None:
            raise NotFittedError("HGRU4Rec is not fitted: call fit() or load() first")
        return self.net


def _resolved(config: HGRU4RecConfig) -> HGRU4RecConfig:
    """The config trained without selection: "auto" with user-level fields set means "on"."""
    return replace(config, user_level="on") if config.user_level == "auto" else config


def _fit_candidate(
    config: HGRU4RecConfig, train: Sessions, catalog: Mapping[str, Item] | None = None
) -> HGRU4Rec:
    """A candidate of the user-level selection, fitted as set (no nested selection)."""
    candidate = HGRU4Rec(config)
    if catalog is not None:
        candidate.use_catalog(catalog)
    return candidate.fit(train)
