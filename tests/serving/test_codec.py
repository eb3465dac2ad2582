"""State codecs and records: every model's state survives bytes, one row per session."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from serving_helpers import cyclic_sessions

from nextbest.models.base import SessionModel
from nextbest.models.covisit import CoVisitation
from nextbest.models.gru4rec import GRU4Rec, GRU4RecConfig
from nextbest.models.knn import VSKNN
from nextbest.models.popularity import MostPopular, SessionPopular
from nextbest.serving.state.codec import codec_for, pack_array, unpack_array
from nextbest.serving.state.records import (
    MAX_BOUGHT,
    SessionRecord,
    UserRecord,
    add_bought,
    decode_session,
    decode_user,
    encode_session,
    encode_user,
)

MODELS = [
    MostPopular,
    SessionPopular,
    CoVisitation,
    VSKNN,
    lambda: GRU4Rec(GRU4RecConfig(layers=(8, 6), n_epochs=1, n_sample=0, batch_size=8)),
]


@pytest.fixture(scope="module", params=MODELS, ids=["pop", "spop", "covisit", "vsknn", "gru4rec"])
def model(request: pytest.FixtureRequest) -> SessionModel[Any, Any]:
    fitted: SessionModel[Any, Any] = request.param().fit(cyclic_sessions(120))
    return fitted


def stepped(model: SessionModel[Any, Any]) -> Any:
    state = model.initial_state(3)
    state = model.step(state, np.array([1, 5, 9]), np.array([1.0, 2.0, 3.0]))
    return model.step(state, np.array([2, 6, 10]), np.array([4.0, 5.0, 6.0]))


def test_rows_join_back_into_the_same_scores(model: SessionModel[Any, Any]) -> None:
    codec = codec_for(model)
    state = stepped(model)
    rows = codec.split(state)
    assert len(rows) == 3 and all(isinstance(row, bytes) for row in rows)
    np.testing.assert_allclose(
        model.score(codec.join(rows)), model.score(state), rtol=1e-5, atol=1e-6
    )
    reordered = codec.join([rows[2], rows[0]])  # any subset, any order
    np.testing.assert_allclose(
        model.score(reordered), model.score(state)[[2, 0]], rtol=1e-5, atol=1e-6
    )


def test_a_joined_state_keeps_stepping_like_the_original(model: SessionModel[Any, Any]) -> None:
    codec = codec_for(model)
    state = stepped(model)
    items, times = np.array([3, 7, 11]), np.array([7.0, 8.0, 9.0])
    direct = model.score(model.step(state, items, times))
    via_bytes = model.score(model.step(codec.join(codec.split(state)), items, times))
    np.testing.assert_allclose(via_bytes, direct, rtol=1e-5)


def test_gru4rec_rows_are_raw_float32_plus_a_small_header() -> None:
    model = GRU4Rec(GRU4RecConfig(layers=(100,), n_epochs=1, n_sample=0)).fit(cyclic_sessions(50))
    row = codec_for(model).split(model.initial_state(1))[0]
    assert 400 < len(row) <= 400 + 16 and b"<f4" in row[:8]


def test_a_state_that_is_not_an_array_is_refused() -> None:
    class Opaque(MostPopular):
        name = "opaque"

        def initial_state(self, n: int) -> Any:
            return {"sessions": n}

    with pytest.raises(ValueError, match="opaque"):
        codec_for(Opaque().fit(cyclic_sessions(20)))


def test_packed_arrays_keep_dtype_and_shape_and_refuse_objects() -> None:
    for array in (np.arange(6, dtype=np.int64).reshape(2, 3), np.zeros(0), np.float32(2.5)):
        back, end = unpack_array(pack_array(np.asarray(array)))
        assert back.dtype == np.asarray(array).dtype and back.shape == np.asarray(array).shape
        assert end == len(pack_array(np.asarray(array)))
    with pytest.raises(ValueError, match="objects"):
        unpack_array(b"\x03|O8\x01\x01\x00\x00\x00" + bytes(8))


def test_records_round_trip() -> None:
    record = SessionRecord(b"12345678", b"\x00state", 41, 3, 5, 17.5, "sku-é", ("a", "b"))
    assert decode_session(encode_session(record)) == record
    assert decode_session(encode_session(SessionRecord(bytes(8), b""))) == SessionRecord(
        bytes(8), b""
    )
    assert decode_user(encode_user(UserRecord(("x", "y")))) == UserRecord(("x", "y"))
    bought: tuple[str, ...] = ()
    for k in range(MAX_BOUGHT + 5):
        bought = add_bought(bought, f"i{k}")
    bought = add_bought(bought, "i50")  # a repeat moves to the end
    assert len(bought) == MAX_BOUGHT and bought[-1] == "i50" and "i0" not in bought
    with pytest.raises(ValueError, match="not a session record"):
        decode_session(encode_user(UserRecord()))
