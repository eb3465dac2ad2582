"""What `nextbest train` reads and saves beside any model, a single one or a pipeline: the
training events, the learned purchase rules, the catalog, the search query graph and the
keyword ranker; then the version's shared meta, its saving and its report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from nextbest.cli.common import console
from nextbest.events.io import read_events


@dataclass
class VersionInputs:
    events: pl.DataFrame | None  # the training events (None once the sessions are coded)
    item_table: pl.DataFrame | None
    rules: Any
    graph: Any
    keyword_ranker: Any
    trained_until: float | None
    notes: tuple[str, ...]  # what was learned beside the model, printed after it

    def release_events(self) -> pl.DataFrame:
        """The events, dropped from here: a model trains on the coded sessions, the table
        need not stay in memory."""
        assert self.events is not None
        events, self.events = self.events, None
        return events

    def meta(self) -> dict[str, Any]:
        """The version meta of what was learned beside the model."""
        ranker = self.keyword_ranker
        return {
            "trained_until": self.trained_until,
            "purchase_rules": None if self.rules is None else self.rules.counts(),
            "query_graph": None if self.graph is None else self.graph.summary(),
            "keyword_ranker": None if ranker is None else {"kind": ranker.kind, **ranker.meta},
        }

    def save(self, model: Any, home: Path | None, meta: dict[str, Any], done: str) -> Path:
        """Save `model` as a version with `meta` and what was learned beside it; print `done`
        (with ` -> FOLDER`) and the notes."""
        from nextbest.cli.keywords import version_extra
        from nextbest.models.store import nextbest_home, save_version

        extra = version_extra(self.rules, self.graph, self.keyword_ranker)
        folder = save_version(model, home or nextbest_home(), meta, extra=extra)
        console.print(f"{done} -> {folder}")
        for note in self.notes:
            console.print(note, highlight=False)
        return folder


def read_version_inputs(
    train_path: Path,
    items_path: Path | None,
    skip_bad: bool,
    scenarios: Path | None,
    keyword_cards: Path | None,
    keyword_ranker: str,
) -> VersionInputs:
    """Read the training events and learn what goes beside the model, before the model's fit:
    a bad catalog or card file fails in a second, not after minutes of training."""
    from nextbest.cli.evaluate import last_event_time, learn_rules, read_items
    from nextbest.cli.keywords import learn_keyword_ranker, learn_query_graph

    events = read_events(train_path, "skip" if skip_bad else "raise")
    rules, rules_note = learn_rules(events, train_path, items_path)
    item_table = read_items(items_path) if items_path is not None else None
    graph, graph_note = learn_query_graph(events, train_path, item_table, scenarios)
    ranker, ranker_note = learn_keyword_ranker(
        keyword_cards, events, graph, item_table, keyword_ranker
    )
    notes = (rules_note, graph_note, *((ranker_note,) if ranker_note else ()))
    return VersionInputs(events, item_table, rules, graph, ranker, last_event_time(events), notes)
