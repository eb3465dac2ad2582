"""What the state store keeps per session and per user, as compact bytes.

A session record holds the model state row (see `codec.py`) and what the server needs beside
it: which model version made the state (a record of another version is rebuilt from the log),
the log position of the last event applied (an event at or before it is never applied twice),
its latest item, the items bought in it, its last `MAX_RECENT` item events (item, type,
time: what the pipeline's rules and filters look at), the user it belongs to (none:
anonymous) and its affinity profile (`recommend/affinity.py`, its own bytes; b"" before the
first item event with catalog attributes), and whether its first event named no user (an
experiment then assigns it by its session id for its whole life, a login included). A user
record holds the items the user bought and when, so recommendations can leave them out and
the purchase rules can time their hold, and for a model that remembers users (HGRU4Rec) the
state a new session of the user starts from and the session open now (its end moves the user
state).

    session := "NBS5" tag[8] last_seq:u64 steps:u32 events:u32 last_time:f64 last_item:str
               user:str bought:u16 str* recent:u16 (str type:u8 time:f64)* state_len:u32 state
               affinity_len:u32 affinity started_anonymous:u8
    user    := "NBU3" tag[8] open_session:str bought:u16 str* bought_at:f64* state_len:u32 state
    str     := len:u16 utf-8 (len 0xFFFF: none)

A record of an older format is not read: the session (or user) is rebuilt from the log.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

SESSION_MAGIC = b"NBS5"
USER_MAGIC = b"NBU3"
NO_TAG = bytes(8)
MAX_BOUGHT = 100  # per session and per user, the most recent
MAX_RECENT = 50  # item events kept per session for rules and filters, the most recent
# Event types as one byte in `recent` (an unknown type is stored as "view").
EVENT_TYPE_CODES = (
    "view", "click", "cart", "remove-from-cart", "purchase", "search", "keyword-click",
    "favorite", "dwell",
)  # fmt: skip
_TYPE_CODE = {name: code for code, name in enumerate(EVENT_TYPE_CODES)}
_RECENT = struct.Struct("<Bd")
_NONE = 0xFFFF
_HEAD = struct.Struct("<4s8sQIId")


@dataclass(frozen=True, slots=True)
class Interaction:
    """One item event of a session, as rules and filters see it."""

    item_id: str
    type: str
    time: float


@dataclass(frozen=True)
class SessionRecord:
    model_tag: bytes  # 8 bytes naming the model version the state belongs to
    state: bytes  # the model state row; b"" without a model
    last_seq: int = 0  # log position of the last event applied
    n_steps: int = 0  # model steps taken (item events the model knows)
    n_events: int = 0  # events applied
    last_time: float = 0.0
    last_item: str | None = None
    bought: tuple[str, ...] = field(default=())
    user_id: str | None = None  # the user the session belongs to
    recent: tuple[Interaction, ...] = ()  # the last MAX_RECENT item events, oldest first
    affinity: bytes = b""  # the session's affinity profile, encoded
    # its first event named no user: it stays assigned by its session id after a login
    started_anonymous: bool = False


@dataclass(frozen=True)
class UserRecord:
    bought: tuple[str, ...] = ()
    bought_at: tuple[float, ...] = ()  # when each of `bought` was bought (same order)
    model_tag: bytes = NO_TAG  # the model version `state` belongs to
    state: bytes = b""  # the state row the user's next (or open) session starts from
    open_session: str | None = None  # the session that started from `state`

    def __post_init__(self) -> None:
        if len(self.bought_at) != len(self.bought):  # a time per item; unknown: 0
            times = (*self.bought_at[: len(self.bought)], *[0.0] * len(self.bought))
            object.__setattr__(self, "bought_at", tuple(times[: len(self.bought)]))


def add_bought(bought: tuple[str, ...], item_id: str) -> tuple[str, ...]:
    """`bought` with `item_id` as the most recent, at most MAX_BOUGHT long."""
    kept = (*(item for item in bought if item != item_id), item_id)
    return kept[-MAX_BOUGHT:]


def add_purchase(record: UserRecord, item_id: str, time: float) -> UserRecord:
    """`record` with `item_id` bought at `time` as its most recent purchase."""
    when = dict(zip(record.bought, record.bought_at, strict=False))
    when[item_id] = time
    bought = add_bought(record.bought, item_id)
    return replace(record, bought=bought, bought_at=tuple(when.get(i, 0.0) for i in bought))


def add_recent(
    recent: tuple[Interaction, ...], item_id: str, type: str, time: float
) -> tuple[Interaction, ...]:
    return (*recent, Interaction(item_id, type, time))[-MAX_RECENT:]


def _pack_recent(recent: tuple[Interaction, ...]) -> bytes:
    parts = [struct.pack("<H", len(recent))]
    for interaction in recent:
        parts.append(_pack_str(interaction.item_id))
        parts.append(_RECENT.pack(_TYPE_CODE.get(interaction.type, 0), interaction.time))
    return b"".join(parts)


def _unpack_recent(data: bytes, offset: int) -> tuple[tuple[Interaction, ...], int]:
    (count,) = struct.unpack_from("<H", data, offset)
    offset += 2
    recent = []
    for _ in range(count):
        item, offset = _unpack_str(data, offset)
        code, time = _RECENT.unpack_from(data, offset)
        offset += _RECENT.size
        recent.append(Interaction(item or "", EVENT_TYPE_CODES[code], time))
    return tuple(recent), offset


def _pack_str(text: str | None) -> bytes:
    if text is None:
        return struct.pack("<H", _NONE)
    data = text.encode()
    if len(data) >= _NONE:
        raise ValueError(f"an id of {len(data)} bytes is too long to store")
    return struct.pack("<H", len(data)) + data


def _unpack_str(data: bytes, offset: int) -> tuple[str | None, int]:
    (length,) = struct.unpack_from("<H", data, offset)
    if length == _NONE:
        return None, offset + 2
    return data[offset + 2 : offset + 2 + length].decode(), offset + 2 + length


def _pack_strs(texts: tuple[str, ...]) -> bytes:
    return struct.pack("<H", len(texts)) + b"".join(_pack_str(t) for t in texts)


def _unpack_strs(data: bytes, offset: int) -> tuple[tuple[str, ...], int]:
    (count,) = struct.unpack_from("<H", data, offset)
    offset += 2
    texts = []
    for _ in range(count):
        text, offset = _unpack_str(data, offset)
        texts.append(text or "")
    return tuple(texts), offset


def encode_session(record: SessionRecord) -> bytes:
    if len(record.model_tag) != 8:
        raise ValueError(f"a model tag has 8 bytes, not {len(record.model_tag)}")
    return b"".join(
        (
            _HEAD.pack(
                SESSION_MAGIC,
                record.model_tag,
                record.last_seq,
                record.n_steps,
                record.n_events,
                record.last_time,
            ),
            _pack_str(record.last_item),
            _pack_str(record.user_id),
            _pack_strs(record.bought),
            _pack_recent(record.recent),
            struct.pack("<I", len(record.state)),
            record.state,
            struct.pack("<I", len(record.affinity)),
            record.affinity,
            b"\x01" if record.started_anonymous else b"\x00",
        )
    )


def session_tag(data: bytes) -> bytes:
    """The model tag of an encoded session record, without decoding the rest."""
    return data[4:12]


def decode_session(data: bytes) -> SessionRecord:
    if data[:4] != SESSION_MAGIC or len(data) < _HEAD.size:
        raise ValueError(f"not a session record (starts with {data[:4]!r})")
    _, tag, last_seq, n_steps, n_events, last_time = _HEAD.unpack_from(data, 0)
    last_item, offset = _unpack_str(data, _HEAD.size)
    user_id, offset = _unpack_str(data, offset)
    bought, offset = _unpack_strs(data, offset)
    recent, offset = _unpack_recent(data, offset)
    (length,) = struct.unpack_from("<I", data, offset)
    state = data[offset + 4 : offset + 4 + length]
    offset += 4 + length
    (length,) = struct.unpack_from("<I", data, offset)
    affinity = data[offset + 4 : offset + 4 + length]
    started_anonymous = data[offset + 4 + length : offset + 5 + length] == b"\x01"
    return SessionRecord(
        tag,
        state,
        last_seq,
        n_steps,
        n_events,
        last_time,
        last_item,
        bought,
        user_id,
        recent,
        affinity,
        started_anonymous,
    )


def session_owner(data: bytes) -> str | None:
    """The user an encoded session record belongs to, without decoding the rest."""
    _, offset = _unpack_str(data, _HEAD.size)  # the last item comes first
    return _unpack_str(data, offset)[0]


def is_session_record(data: bytes) -> bool:
    """Written in this format (a record of an older format is rebuilt, not read)."""
    return data[:4] == SESSION_MAGIC


def encode_user(record: UserRecord) -> bytes:
    if len(record.model_tag) != 8:
        raise ValueError(f"a model tag has 8 bytes, not {len(record.model_tag)}")
    return b"".join(
        (
            USER_MAGIC,
            record.model_tag,
            _pack_str(record.open_session),
            _pack_strs(record.bought),
            struct.pack(f"<{len(record.bought)}d", *_times(record)),
            struct.pack("<I", len(record.state)),
            record.state,
        )
    )


def _times(record: UserRecord) -> tuple[float, ...]:
    times = record.bought_at[: len(record.bought)]
    return times + (0.0,) * (len(record.bought) - len(times))


def decode_user(data: bytes) -> UserRecord | None:
    """The record, or None for a record of an older format (rebuilt from the log)."""
    if data[:4] != USER_MAGIC:
        return None
    tag = data[4:12]
    open_session, offset = _unpack_str(data, 12)
    bought, offset = _unpack_strs(data, offset)
    bought_at = struct.unpack_from(f"<{len(bought)}d", data, offset)
    offset += 8 * len(bought)
    (length,) = struct.unpack_from("<I", data, offset)
    state = data[offset + 4 : offset + 4 + length]
    return UserRecord(bought, tuple(bought_at), tag, state, open_session)
