"""Whether to show the keyword card at all: a model of the shopper's intent, learned from the
cards shown and whether any of their keywords was clicked.

A card helps a shopper who is unsure what they want and costs one who is sure (it takes their
attention for nothing). What a page can see of that is the session's own events: how long the
latest run of item events has kept to the leaf on screen, how many leaves the latest events
span, how long the visit has been and how fast it moves, whether it has put things in a cart,
and a signed-in user's purchases. `intent_features` computes them from those events, the same
function for a card in the training table and for a served request.

The model is a gradient-boosted classifier (LightGBM: a small tabular problem, nonlinear in
the run and span counts, fast to score): the chance that a shown card gets a click. At
training, the latest tenth of the cards stops the boosting and sets the threshold: the lowest
chance at which the cards shown still keep `keep_clicks` of those cards' clicks. A request
whose chance is below it gets no card.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl

from nextbest.keywords.ranking import ordered_cards, recent_item_events

FEATURES = (
    "run_in_screen_leaf",  # the latest item events in a row in the on-screen item's leaf
    "leaves_latest_4",  # distinct leaves among the latest 4 item events
    "leaves_in_session",  # distinct leaves among the session's item events
    "session_events",  # log(1 + item events in the session so far)
    "session_minutes",  # log(1 + minutes since the session's first item event)
    "seconds_since_last",  # log(1 + seconds since the previous item event)
    "session_carts",  # cart adds and purchases in the session
    "user_purchases",  # log(1 + a signed-in user's earlier purchases)
    "days_since_purchase",  # log(1 + days since the user's latest purchase); NaN without one
    "signed_in",
    "hour_sin",  # the hour of day (UTC) on a circle
    "hour_cos",
)
SESSION_WIDTH = 50  # the session's latest item events read (as the live record keeps)
MODEL_FILE = "show-model.txt"
META_FILE = "show-model.json"
SHOW_DIR = "show"  # in the version's keywords folder
VALID_SHARE = 0.1
Event = tuple[str, str, float]  # (item_id, type, timestamp)


def intent_features(
    session: Sequence[Event],
    purchases: Sequence[Event],
    now: float,
    on_screen: str | None,
    item_leaf: dict[str, int],
    signed_in: bool,
) -> list[float]:
    """FEATURES of one request: the session's item events up to `now` (oldest first), a
    signed-in user's purchases before it, and the item on screen."""
    leaves = [item_leaf.get(item, -1) for item, _, _ in session]
    run = run_in_leaf(leaves, item_leaf.get(on_screen) if on_screen is not None else None)
    known = [leaf for leaf in leaves if leaf >= 0]
    started = session[0][2] if session else now
    previous = session[-1][2] if session else now
    bought = [t for _, _, t in purchases if t < now]
    hour = (now % 86_400.0) / 3_600.0
    return [
        float(run),
        float(len(set(known[-4:]))),
        float(len(set(known))),
        math.log1p(len(session)),
        math.log1p(max(0.0, now - started) / 60.0),
        math.log1p(max(0.0, now - previous)),
        float(sum(kind in ("cart", "purchase") for _, kind, _ in session)),
        math.log1p(len(bought)),
        math.log1p((now - max(bought)) / 86_400.0) if bought else math.nan,
        float(signed_in),
        math.sin(2 * math.pi * hour / 24.0),
        math.cos(2 * math.pi * hour / 24.0),
    ]


def run_in_leaf(leaves: Sequence[int], screen: int | None) -> int:
    """How many of the latest `leaves` (a session's item events' leaves, oldest first; -1
    unknown) in a row are `screen`'s (the latest event's when None); an unknown one ends it."""
    if screen is None:
        screen = leaves[-1] if leaves else -1
    run = 0
    for leaf in reversed(leaves):
        if leaf < 0 or leaf != screen:
            break
        run += 1
    return run


def card_intents(
    cards: pl.DataFrame, events: pl.DataFrame, item_leaf: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    """(features [cards, F], clicked [cards] 0/1, the cards' heads in time order) of the card
    table (CARD_SCHEMA): each card's session events and its user's purchases up to it."""
    ordered = ordered_cards(cards)
    heads = ordered.group_by("card_id", maintain_order=True).agg(
        pl.col("session_id", "user_id", "timestamp", "item_id").first(),
        pl.col("clicked").any(),
    )
    # the session's own events: as if every shopper were anonymous (a shopper = a session)
    anonymous = pl.lit(None, dtype=pl.String).alias("user_id")
    session = recent_item_events(
        heads.with_columns(anonymous), events.with_columns(anonymous), SESSION_WIDTH
    )
    bought = recent_item_events(
        heads.with_columns(
            pl.coalesce("user_id", pl.concat_str(pl.lit("\x00"), "session_id")).alias("user_id")
        ),
        events.filter((pl.col("type") == "purchase") & pl.col("user_id").is_not_null()),
        SESSION_WIDTH,
    )
    rows = [
        intent_features(s, b, now, screen, item_leaf, user is not None)
        for s, b, now, screen, user in zip(
            session, bought, heads["timestamp"], heads["item_id"], heads["user_id"], strict=True
        )
    ]
    features = np.array(rows, dtype=np.float64).reshape(len(rows), len(FEATURES))
    return features, heads["clicked"].to_numpy().astype(np.float64), heads


@dataclass
class ShowModel:
    booster: lgb.Booster
    threshold: float  # show when the predicted chance is at least this
    meta: dict[str, object]

    def chance(self, features: list[float]) -> float:
        # one thread: LightGBM's OpenMP threads would spin on the cores the other server
        # workers need (under load at 100 shoppers/s, every endpoint's p99 doubled)
        row = np.array([features], dtype=np.float64)
        return float(self.booster.predict(row, num_threads=1)[0])

    def chances(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(features, num_threads=1), dtype=np.float64)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / MODEL_FILE))
        meta = {"features": list(FEATURES), "threshold": self.threshold, **self.meta}
        (folder / META_FILE).write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: Path) -> ShowModel | None:
        """The model saved in `folder`, None when there is none; a damaged one is a
        ValueError naming the file."""
        if not (folder / META_FILE).is_file():
            return None
        try:
            meta = json.loads((folder / META_FILE).read_text())
            threshold = float(meta.pop("threshold"))
            features = meta.pop("features")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{folder / META_FILE}: not a show model ({error})") from None
        if features != list(FEATURES):
            raise ValueError(
                f"{folder / META_FILE}: its features are not this version of nextbest's: "
                "retrain it with nextbest train --keyword-cards"
            )
        try:
            booster = lgb.Booster(model_file=str(folder / MODEL_FILE))
        except lgb.basic.LightGBMError as error:
            raise ValueError(f"{folder / MODEL_FILE}: not a LightGBM model ({error})") from None
        return cls(booster, threshold, meta)


def fit_show_model(
    features: np.ndarray, clicked: np.ndarray, keep_clicks: float = 0.9, seed: int = 0
) -> ShowModel:
    """Boost on all but the latest VALID_SHARE of the cards (in time order), stopping and
    choosing the threshold on those."""
    if not 0.0 < keep_clicks <= 1.0:
        raise ValueError(f"keep_clicks must be in (0, 1], not {keep_clicks}")
    n = len(clicked)
    n_valid = max(1, round(VALID_SHARE * n))
    if n - n_valid < 10 or clicked[: n - n_valid].sum() == 0 or clicked[n - n_valid :].sum() == 0:
        raise ValueError(
            f"{n} cards with {int(clicked.sum())} clicked: a show model needs more cards, with "
            "clicks both early and late"
        )
    params = {
        "objective": "binary", "learning_rate": 0.05, "num_leaves": 15,
        "min_data_in_leaf": 50, "feature_fraction": 0.9, "seed": seed,
        "deterministic": True, "num_threads": 1, "verbose": -1,
    }  # fmt: skip
    train = lgb.Dataset(
        features[: n - n_valid], clicked[: n - n_valid], feature_name=list(FEATURES)
    )
    valid = lgb.Dataset(features[n - n_valid :], clicked[n - n_valid :], reference=train)
    booster = lgb.train(
        params, train, num_boost_round=500, valid_sets=[valid],
        callbacks=[lgb.early_stopping(30, verbose=False)],
    )  # fmt: skip
    chances = booster.predict(features[n - n_valid :], num_iteration=booster.best_iteration)
    threshold = threshold_keeping(np.asarray(chances), clicked[n - n_valid :], keep_clicks)
    meta: dict[str, object] = {
        "cards": n,
        "click_share": round(float(clicked.mean()), 4),
        "keep_clicks": keep_clicks,
        "rounds": booster.best_iteration,
    }
    booster.free_dataset()
    return ShowModel(booster, threshold, meta)


def threshold_keeping(chances: np.ndarray, clicked: np.ndarray, keep_clicks: float) -> float:
    """The highest chance t such that the cards with chance >= t hold at least `keep_clicks`
    of the clicks."""
    clicked_chances = np.sort(chances[clicked > 0])[::-1]
    needed = math.ceil(keep_clicks * len(clicked_chances))
    return float(clicked_chances[max(needed, 1) - 1])
