"""GRU4Rec with item attributes: the index of values, cold start, off by default, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nextbest.data.sessions import Sessions
from nextbest.events.schema import Item
from nextbest.models.base import parse_config
from nextbest.models.gru4rec import GRU4Rec, GRU4RecConfig
from nextbest.models.gru4rec.attributes import AttributeIndex, discount_band, expand_kinds
from nextbest.models.popularity import CategoryPopular

SMALL = {"layers": (16,), "batch_size": 8, "n_sample": 8, "n_epochs": 4, "learning_rate": 0.1}


def item(item_id: str, path: tuple[str, ...], brand: str | None = None, **extra: object) -> Item:
    return Item(
        item_id=item_id,
        category_path=path,
        brand=brand,
        price=extra.pop("price", 10.0),  # type: ignore[arg-type]
        discount=extra.pop("discount", 0.0),  # type: ignore[arg-type]
        attributes=extra,
    )


def test_kinds_expand_category_price_and_discount() -> None:
    assert expand_kinds(["category", "brand", "price"]) == (
        "category_1",
        "category_2",
        "category",
        "brand",
        "price_band",
    )
    assert expand_kinds(["discount", "colour", "category_1", "category"]) == (
        "discount_band",
        "colour",
        "category_1",
        "category_2",
        "category",
    )
    assert [discount_band(d) for d in (None, 0.0, 0.05, 0.1, 0.3, 0.45, 0.8)] == [
        None,
        "none",
        "to10",
        "to10",
        "to30",
        "to50",
        "over50",
    ]


def test_index_keeps_shared_values_and_splits_list_weights() -> None:
    catalog = {
        "a": item("a", ("Shoes", "Running"), "Acme", colour=["red", "blue"]),
        "b": item("b", ("Shoes", "Running"), "Acme", colour="red"),
        "c": item("c", ("Shoes", "Trail"), "Solo", colour="blue"),
    }
    index = AttributeIndex.build(["a", "b", "c", "ghost"], catalog, ["brand", "colour"])
    names = list(index.values)
    # "Solo" belongs to one item only: a value of one item would be a second id row
    assert names == ["brand=Acme", "colour=blue", "colour=red"]
    row = {name: k + 1 for k, name in enumerate(names)}
    a = dict(zip(index.slots[0].tolist(), index.weights[0].tolist(), strict=True))
    assert a[row["brand=Acme"]] == 1.0
    assert a[row["colour=red"]] == a[row["colour=blue"]] == 0.5  # a list shares its weight
    assert index.covered().tolist() == [True, True, True, False]  # "ghost" is not listed
    assert (index.slots[3] == 0).all() and (index.weights[3] == 0).all()


def category_sessions(seed: int, n: int = 300) -> tuple[Sessions, dict[str, Item]]:
    """Two categories of 8 items each (item 7, a "shoe", is never seen in training); every
    session stays inside one category, so its category is all that predicts the next item."""
    rng = np.random.default_rng(seed)
    catalog = {
        str(i): item(str(i), ("Shoes",) if i < 8 else ("Books",), "Acme" if i < 8 else "Pages")
        for i in range(16)
    }
    shoes, books = np.arange(7), np.arange(8, 16)  # 7 is held out
    sessions: list[list[int]] = []
    for s in range(n):
        pool = shoes if s % 2 == 0 else books
        sessions.append(rng.choice(pool, size=int(rng.integers(3, 7))).tolist())
    items = np.array([i for s in sessions for i in s], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sessions])]).astype(np.int64)
    train = Sessions(
        item_ids=np.array([str(i) for i in range(16)], dtype=object),
        session_ids=np.array([str(i) for i in range(n)], dtype=object),
        offsets=offsets,
        items=items,
        times=np.arange(len(items), dtype=np.float64),
    )
    return train, catalog


def fitted(attributes: tuple[str, ...], catalog: dict[str, Item], train: Sessions) -> GRU4Rec:
    model = GRU4Rec(GRU4RecConfig(**SMALL, attributes=attributes))  # type: ignore[arg-type]
    model.use_catalog(catalog)
    return model.fit(train)


def test_an_item_unseen_in_training_scores_by_its_attributes() -> None:
    train, catalog = category_sessions(seed=1)
    assert train.item_support()[7] == 0
    with_attributes = fitted(("category", "brand"), catalog, train)
    id_only = fitted((), catalog, train)
    after_shoes = np.array([0, 3])
    for model in (with_attributes, id_only):
        state = model.initial_state(1)
        for shoe in after_shoes:
            state = model.step(state, np.array([shoe]), np.zeros(1))
        scores = model.score(state)[0]
        if model is with_attributes:
            # the new shoe ranks among the shoes, above every book
            assert scores[7] > scores[8:].max()
        else:
            # without attributes it has no evidence at all: it ranks below every item
            assert scores[7] < np.delete(scores, 7).min()


def test_attribute_tables_are_folded_into_the_item_tables_after_fit() -> None:
    train, catalog = category_sessions(seed=2, n=120)
    model = fitted(("category",), catalog, train)
    assert model.net is not None and model.net.attributes is not None
    assert bool(model.net.attributes.folded) and model.net.training_attributes is None
    everything = torch.arange(16)
    # item 7's id row stayed zero in training: its folded row is its attribute rows exactly
    expected = model.net.attributes.output_rows(everything)[7].detach()
    assert torch.allclose(model.net.item_weights[7], expected)
    assert float(expected.abs().sum()) > 0.0


def test_attributes_off_builds_no_attribute_tables() -> None:
    train, catalog = category_sessions(seed=3, n=60)
    model = fitted((), catalog, train)
    assert model.net is not None and model.net.attributes is None
    assert not any(key.startswith("net.attributes") for key in model.arrays())
    assert "attribute_values" not in model.arrays()


@pytest.mark.parametrize(
    "extra",
    [{}, {"constrained_embedding": False, "embedding": 6}, {"constrained_embedding": False}],
)
def test_save_load_round_trips_an_attribute_model(tmp_path: Path, extra: dict[str, object]) -> None:
    train, catalog = category_sessions(seed=4, n=80)
    config = GRU4RecConfig(**{**SMALL, **extra, "attributes": ("category", "brand")})  # type: ignore[arg-type]
    model = GRU4Rec(config)
    model.use_catalog(catalog)
    model.fit(train)
    model.save(tmp_path / "m")
    loaded = GRU4Rec.load(tmp_path / "m")
    assert loaded.config.attributes == ("category", "brand")
    assert loaded.attribute_values is not None
    assert loaded.attribute_values.tolist() == model.attribute_values.tolist()  # type: ignore[union-attr]
    items = np.array([7, 2, 12])
    a = model.step(model.initial_state(3), items, np.zeros(3))
    b = loaded.step(loaded.initial_state(3), items, np.zeros(3))
    assert np.array_equal(model.score(a), loaded.score(b))


def test_attributes_without_a_catalog_are_refused_by_name() -> None:
    train, _ = category_sessions(seed=5, n=20)
    with pytest.raises(ValueError, match=r"attributes=brand needs the catalog.*--items"):
        GRU4Rec(GRU4RecConfig(**SMALL, attributes=("brand",))).fit(train)  # type: ignore[arg-type]


def test_attributes_nobody_shares_are_refused() -> None:
    train, catalog = category_sessions(seed=6, n=20)
    with pytest.raises(ValueError, match=r"no value of attributes=colour is shared"):
        fitted(("colour",), catalog, train)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"attributes": "brand,brand"}, "distinct attribute names"),
        ({"attribute_id_dropout": "1.5"}, "attribute_id_dropout"),
    ],
)
def test_bad_attribute_parameters_are_named(raw: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_config(GRU4RecConfig, raw)


def test_category_popularity_ranks_the_current_category_first() -> None:
    train, catalog = category_sessions(seed=7, n=60)
    model = CategoryPopular()
    model.use_catalog(catalog)
    model.fit(train)
    state = model.step(model.initial_state(2), np.array([2, 9]), np.zeros(2))
    scores = model.score(state)
    assert scores[0, :8].min() > scores[0, 8:].max()  # after a shoe: shoes first
    assert scores[1, 8:].min() > scores[1, :8].max()  # after a book: books first
    support = train.item_support()
    shoes = np.arange(8)
    assert np.array_equal(
        np.argsort(-scores[0, shoes], kind="stable"), np.argsort(-support[shoes], kind="stable")
    )
    with pytest.raises(ValueError, match="catpop needs the catalog"):
        CategoryPopular().fit(train)


def test_hgru4rec_embeds_attributes_as_gru4rec_does(tmp_path: Path) -> None:
    from nextbest.models.hgru4rec import HGRU4Rec, HGRU4RecConfig

    train, catalog = category_sessions(seed=8)
    users = np.array([f"u{s % 40}" for s in range(train.n_sessions)], dtype=object)
    train = Sessions(**{**train.__dict__, "user_ids": users})
    config = HGRU4RecConfig(**SMALL, attributes=("category", "brand"), user_level="on")  # type: ignore[arg-type]
    model = HGRU4Rec(config)
    model.use_catalog(catalog)
    model.fit(train)
    state = model.initial_state(1)
    for shoe in (1, 4):
        state = model.step(state, np.array([shoe]), np.zeros(1))
    scores = model.score(state)[0]
    assert scores[7] > scores[8:].max()  # the new shoe among the shoes
    model.save(tmp_path / "h")
    loaded = HGRU4Rec.load(tmp_path / "h")
    again = loaded.step(loaded.initial_state(1), np.array([7]), np.zeros(1))
    first = model.step(model.initial_state(1), np.array([7]), np.zeros(1))
    assert np.array_equal(model.score(first), loaded.score(again))
    with pytest.raises(ValueError, match="needs the catalog"):
        HGRU4Rec(config).fit(train)
