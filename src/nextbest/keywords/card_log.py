"""The keyword card table (`CARD_SCHEMA`) of a server's own log: the cards it showed and the
keywords shoppers clicked on them.

`GET /v1/keywords` keeps each card it shows as a served list (placement `keywords`; its
items are (query, path, score) in the order shown). A `keyword-click` event carries the
card's `recommendation_id` and the clicked `query` back. One row per keyword shown:

    card_id     the card's recommendation_id
    session_id  the session it was shown to; a card served without one is a session of its
                own (its card_id): the rankers group and split cards by session
    user_id     the user the card was served for (the session's owner, or the request's)
    timestamp   when it was served (server clock, epoch seconds)
    item_id     the product on screen (null: none)
    position    0-based, in the order shown (as the demo shop's cards)
    query       the keyword as shown
    clicked     a keyword-click with the card's id and this query (after `normalise_text`)

A click is a label only when its card was read and its query was on it; the rest are
counted, never guessed at: an id that is no kept keyword card (unknown, forgotten, or
another placement's list) or a query the card did not show. Clicking a keyword twice
labels it once and counts once. A click on a kept keyword card served outside the window
(before `since`, at or after `until`) belongs to another export and is left out of both.

    exported = cards_from_log(log, since=day0, until=day30)
    exported.cards.write_parquet("cards.parquet")   # `read_cards` reads it back
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

import polars as pl

from nextbest.events.log.base import EventLog, ServedList
from nextbest.events.schema import EventType
from nextbest.keywords.graph import normalise_text
from nextbest.keywords.ranking import CARD_SCHEMA, conform_cards

PLACEMENT = "keywords"  # the placement `GET /v1/keywords` keeps its cards under
BATCH = 5_000  # served lists per query
CLICK = EventType.KEYWORD_CLICK.value
# a keyword shown, before its label: CARD_SCHEMA's columns but `clicked`, and its query
# normalised (what a click's query is matched on)
_ROW_SCHEMA = {**{n: t for n, t in CARD_SCHEMA.items() if n != "clicked"}, "normalised": pl.String}

T = TypeVar("T")


@dataclass(frozen=True)
class LoggedCards:
    """The card table (CARD_SCHEMA, conformed, in `ordered_cards` order) and what went
    into it."""

    cards: pl.DataFrame
    n_cards: int  # cards with a keyword
    n_keywords: int
    sessionless: int  # cards served without a session_id (their session is the card)
    clicks_matched: int  # distinct (card, keyword) clicks that label a row
    clicks_unknown_card: int  # ... whose id is no kept keyword card
    clicks_off_card: int  # ... whose query the card did not show

    @property
    def clicks_unmatched(self) -> int:
        return self.clicks_unknown_card + self.clicks_off_card

    @property
    def keywords_clicked(self) -> int:
        return int(self.cards["clicked"].sum())

    @property
    def click_rate(self) -> float:
        """Clicked keywords per keyword shown (0 without cards)."""
        return self.keywords_clicked / self.n_keywords if self.n_keywords else 0.0


def cards_from_log(
    log: EventLog,
    since: float | None = None,
    until: float | None = None,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> LoggedCards:
    """The keyword cards the server kept that were served at or after `since` and before
    `until` (epoch seconds, server clock; None: no bound), with their clicks.

    The cards are read `batch` lists at a time, `progress(cards read so far)` called after
    each batch. The clicks read are the `keyword-click` events received from `since` on (or
    from the first card on, without `since`): a click comes after its card, maybe after
    `until`."""
    if since is not None and until is not None and since >= until:
        raise ValueError(f"since ({since}) must be before until ({until})")
    frames, sessionless, n_read = [], 0, 0
    for lists in _batches(log.served_lists(PLACEMENT, since, until, batch), batch):
        frames.append(_card_rows(lists))
        sessionless += sum(served.session_id is None and bool(served.items) for served in lists)
        n_read += len(lists)
        if progress is not None:
            progress(n_read)
    rows = pl.concat(frames) if frames else pl.DataFrame(schema=_ROW_SCHEMA)
    first_card = rows["timestamp"].min()
    start = since if since is not None or not isinstance(first_card, float) else first_card
    clicks = _clicks(log, start)
    key = ["card_id", "normalised"]
    shown = rows.select(key).unique()
    matched = clicks.join(shown, on=key, how="semi")
    unmatched = clicks.join(shown, on=key, how="anti")
    on_card = unmatched["card_id"].is_in(rows["card_id"].unique().implode())
    off_card = unmatched.filter(on_card).height
    unknown = _unknown_cards(log, unmatched.filter(~on_card), until)
    labels = matched.select(*key, pl.lit(True).alias("clicked"))
    cards = rows.join(labels, on=key, how="left", maintain_order="left").with_columns(
        pl.col("clicked").fill_null(False)
    )
    return LoggedCards(
        cards=conform_cards(cards),
        n_cards=rows["card_id"].n_unique(),
        n_keywords=rows.height,
        sessionless=sessionless,
        clicks_matched=matched.height,
        clicks_unknown_card=unknown,
        clicks_off_card=off_card,
    )


def _card_rows(lists: list[ServedList]) -> pl.DataFrame:
    """One row per keyword shown (no label yet), with its normalised query."""
    columns: dict[str, list[object]] = {name: [] for name in _ROW_SCHEMA}
    for served in lists:
        session = served.session_id if served.session_id is not None else served.recommendation_id
        for position, (query, _path, _score) in enumerate(served.items):
            columns["card_id"].append(served.recommendation_id)
            columns["session_id"].append(session)
            columns["user_id"].append(served.user_id)
            columns["timestamp"].append(served.served_at)
            columns["item_id"].append(served.item_id)
            columns["position"].append(position)
            columns["query"].append(query)
            columns["normalised"].append(normalise_text(query))
    return pl.DataFrame(columns, schema=_ROW_SCHEMA)


def _clicks(log: EventLog, since: float | None) -> pl.DataFrame:
    """(card_id, normalised query, received_at) of each distinct keyword clicked on a card
    (the first click of a repeat), from the clicks received at or after `since`."""
    first: dict[tuple[str, str], float] = {}
    for event in log.events_of_type(CLICK, since=since):
        if event.recommendation_id and event.query:
            key = (event.recommendation_id, normalise_text(event.query))
            first.setdefault(key, event.received_at)
    return pl.DataFrame(
        {
            "card_id": [card for card, _ in first],
            "normalised": [query for _, query in first],
            "received_at": list(first.values()),
        },
        schema={"card_id": pl.String, "normalised": pl.String, "received_at": pl.Float64},
    )


def _unknown_cards(log: EventLog, clicks: pl.DataFrame, until: float | None) -> int:
    """How many of these clicks (whose card is not among those read) point at no kept
    keyword card. Those received at or after `until` are left for a later export; a kept
    keyword card outside the window is another export's."""
    if until is not None:
        clicks = clicks.filter(pl.col("received_at") < until)
    ids = clicks["card_id"].unique().to_list()
    other_windows = set()
    for card_id in ids:  # few: clicks at the window's edges, and ids of no keyword card
        served = log.served(card_id)
        if served is not None and served.placement == PLACEMENT:
            other_windows.add(card_id)
    return clicks.filter(~pl.col("card_id").is_in(list(other_windows))).height


def _batches(values: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk
