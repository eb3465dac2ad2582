"""Should the card be shown? The show model against rules, on a time split of the cards.

The cards of sessions ending in the last `test_days` days are the test (as `nextbest keywords
rankers` splits); the model learns on the others, the latest tenth of them stopping it and
setting its threshold. Each decision is measured on the test cards: the share of them it
would show, the share of their clicks those hold, and the click rate of the shown. A card
that is not shown gets no click, so a decision trades impressions for clicks; the model's AUC
says how well it orders the cards at any threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from nextbest.data.splits import split_by_time
from nextbest.evaluation.keyword_rankers import cards_in_test
from nextbest.keywords.ranking import Vocabulary
from nextbest.keywords.show_model import FEATURES, ShowModel, card_intents, fit_show_model
from nextbest.twostage.metrics import auc

FOCUS_RUN = 3  # the rule: no card once this many latest item events keep to the leaf on screen


@dataclass(frozen=True)
class Decision:
    name: str
    shown: float  # share of the test cards shown
    clicks_kept: float  # share of the test cards' clicks on the shown cards
    click_rate: float  # clicks per shown card


@dataclass(frozen=True)
class ShowEvaluation:
    train_cards: int
    test_cards: int
    test_click_share: float
    auc: float
    threshold: float
    decisions: list[Decision]
    model: ShowModel


def evaluate_show_decisions(
    events: pl.DataFrame,
    items: pl.DataFrame,
    cards: pl.DataFrame,
    test_days: float = 2.0,
    keep_clicks: float = 0.9,
) -> ShowEvaluation:
    item_leaf = Vocabulary.leaves_of(items)
    features, clicked, heads = card_intents(cards, events, item_leaf)
    split = split_by_time(events, test_days)
    in_test = cards_in_test(heads, split.test)
    model = fit_show_model(features[~in_test], clicked[~in_test], keep_clicks)
    test_features, test_clicked = features[in_test], clicked[in_test]
    chances = model.chances(test_features)
    run = test_features[:, FEATURES.index("run_in_screen_leaf")]
    decisions = [
        _decision("always (outside a purchase funnel, the shipped rule)", np.ones_like(run) > 0,
                  test_clicked),
        _decision(f"rule: not after {FOCUS_RUN} item events in the leaf on screen",
                  run < FOCUS_RUN, test_clicked),
        _decision(f"show model, threshold {model.threshold:.3f} (keeps {keep_clicks:.0%} of "
                  "validation clicks)", chances >= model.threshold, test_clicked),
    ]  # fmt: skip
    return ShowEvaluation(
        train_cards=int((~in_test).sum()),
        test_cards=int(in_test.sum()),
        test_click_share=float(test_clicked.mean()),
        auc=auc(test_clicked, chances),
        threshold=model.threshold,
        decisions=decisions,
        model=model,
    )


def _decision(name: str, show: np.ndarray, clicked: np.ndarray) -> Decision:
    shown = int(show.sum())
    return Decision(
        name=name,
        shown=shown / max(len(show), 1),
        clicks_kept=float(clicked[show].sum() / max(clicked.sum(), 1.0)),
        click_rate=float(clicked[show].sum() / max(shown, 1)),
    )
