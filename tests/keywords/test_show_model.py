"""Whether to show the card: the intent features of a request, the show model learned from
shown cards (better than chance at keeping clicks on later cards), its threshold, and its
file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop
from nextbest.evaluation.keyword_show import evaluate_show_decisions
from nextbest.keywords.show_model import (
    FEATURES,
    ShowModel,
    fit_show_model,
    intent_features,
    run_in_leaf,
    threshold_keeping,
)

LEAF = {"shoe1": 0, "shoe2": 0, "sock1": 1, "tent1": 2, "mug1": 3}


def test_intent_features_of_a_request() -> None:
    session = [
        ("tent1", "view", 0.0), ("sock1", "cart", 60.0), ("shoe1", "view", 120.0),
        ("shoe2", "view", 180.0),
    ]  # fmt: skip
    bought = [("mug1", "purchase", 180.0 - 2 * 86_400.0)]
    now = 6 * 3_600.0 + 180.0  # 06:03 UTC: the session began at 06:00
    session = [(i, k, t + 6 * 3_600.0) for i, k, t in session]
    bought = [(i, k, t + 6 * 3_600.0) for i, k, t in bought]
    row = dict(
        zip(FEATURES, intent_features(session, bought, now, "shoe1", LEAF, True), strict=True)
    )
    assert row["run_in_screen_leaf"] == 2 and row["leaves_latest_4"] == 3
    assert row["leaves_in_session"] == 3 and row["session_events"] == pytest.approx(math.log1p(4))
    assert row["session_minutes"] == pytest.approx(math.log1p(3.0))
    assert row["seconds_since_last"] == 0.0 and row["session_carts"] == 1.0
    assert row["user_purchases"] == pytest.approx(math.log1p(1))
    assert row["days_since_purchase"] == pytest.approx(math.log1p(2.0))
    assert row["signed_in"] == 1.0 and row["hour_sin"] == pytest.approx(
        math.sin(math.pi * 6.05 / 12)
    )
    anonymous = intent_features([], [], now, None, LEAF, False)
    assert math.isnan(anonymous[FEATURES.index("days_since_purchase")])
    assert anonymous[FEATURES.index("run_in_screen_leaf")] == 0.0


def test_a_run_ends_at_another_or_an_unknown_leaf() -> None:
    assert run_in_leaf([2, 0, 0, 0], 0) == 3
    assert run_in_leaf([0, -1, 0], 0) == 1
    assert run_in_leaf([1, 1], None) == 2  # without a screen, the latest event's leaf
    assert run_in_leaf([], None) == 0


def test_the_threshold_keeps_the_share_of_clicks_asked() -> None:
    chances = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    clicked = np.array([1, 0, 1, 0, 1, 0, 1, 0, 0, 1], dtype=float)
    assert threshold_keeping(chances, clicked, 0.6) == 0.5  # 3 of the 5 clicks
    assert threshold_keeping(chances, clicked, 1.0) == 0.05


@pytest.fixture(scope="module")
def evaluation() -> object:
    shop = generate_demo_shop(DemoShopConfig(n_events=120_000, n_items=500, n_users=1_200, days=12))
    return evaluate_show_decisions(shop.events, shop.items, shop.cards, test_days=2.0)


def test_the_show_model_keeps_more_clicks_than_the_cards_it_hides(evaluation: object) -> None:
    from nextbest.evaluation.keyword_show import ShowEvaluation

    assert isinstance(evaluation, ShowEvaluation)
    assert evaluation.auc > 0.56
    always, rule, model = evaluation.decisions
    assert (always.shown, always.clicks_kept) == (1.0, 1.0)
    # hiding cards the model expects no click on drops fewer clicks than cards
    assert model.shown < 1.0 and model.clicks_kept > model.shown + 0.03
    assert model.click_rate > always.click_rate and rule.click_rate > always.click_rate


def test_a_saved_show_model_loads_with_the_same_chances(evaluation: object, tmp_path: Path) -> None:
    model = evaluation.model  # type: ignore[attr-defined]
    model.save(tmp_path)
    loaded = ShowModel.load(tmp_path)
    assert loaded is not None and loaded.threshold == model.threshold
    rows = np.random.default_rng(0).random((20, len(FEATURES)))
    np.testing.assert_allclose(loaded.chances(rows), model.chances(rows))
    assert ShowModel.load(tmp_path / "none") is None
    meta = json.loads((tmp_path / "show-model.json").read_text())
    (tmp_path / "show-model.json").write_text(json.dumps(meta | {"features": ["other"]}))
    with pytest.raises(ValueError, match="its features are not this version"):
        ShowModel.load(tmp_path)


def test_a_show_model_needs_clicks_early_and_late() -> None:
    features = np.zeros((100, len(FEATURES)))
    clicked = np.r_[np.zeros(95), np.ones(5)]  # every click among the latest tenth
    with pytest.raises(ValueError, match="clicks both early and late"):
        fit_show_model(features, clicked)
    with pytest.raises(ValueError, match="keep_clicks must be in"):
        fit_show_model(features, clicked, keep_clicks=0.0)
