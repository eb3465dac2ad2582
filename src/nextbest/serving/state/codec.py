"""Model states as bytes: one compact row per session, never pickle.

A model's state covers a batch of sessions (`SessionModel`); a state store keeps one
session per key. A codec splits a batch state into per-session rows and joins rows back into
a batch state, so the server can step many sessions in one call:

    codec = codec_for(model)
    rows = codec.split(model.step(codec.join([row_a, row_b]), items, times))

A row is a small header (dtype, shape) and the raw array bytes: a GRU4Rec session of 100
units is 410 bytes. Supported states: a tensor or array whose first axis is the batch
(GRU4Rec), a count (popularity), and dataclasses whose fields are such arrays or per-session
lists of arrays (co-visitation, session-kNN, session popularity).
"""

from __future__ import annotations

import dataclasses
import struct
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch

from nextbest.models.base import SessionModel

_LENGTH = struct.Struct("<I")


class StateCodec(ABC):
    """Splits a model's batch state into bytes rows (one per session) and joins them back."""

    @abstractmethod
    def split(self, state: Any) -> list[bytes]:
        """One row per session of the batch, in batch order."""

    @abstractmethod
    def join(self, rows: Sequence[bytes]) -> Any:
        """The batch state of these sessions, in this order (rows of one `group_key`)."""

    def group_key(self, row: bytes) -> Hashable:
        """Rows with equal keys can be joined into one batch (equal shapes)."""
        return None


def pack_array(array: np.ndarray) -> bytes:
    """dtype, shape and the raw bytes of `array` (C order)."""
    dtype = array.dtype.str.encode()
    header = struct.pack(
        f"<B{len(dtype)}sB{array.ndim}I", len(dtype), dtype, array.ndim, *array.shape
    )
    return header + np.ascontiguousarray(array).tobytes()


def unpack_array(data: bytes | memoryview, offset: int = 0) -> tuple[np.ndarray, int]:
    """The array packed at `offset` (a writable copy) and the offset just after it."""
    (n_dtype,) = struct.unpack_from("<B", data, offset)
    offset += 1
    dtype = np.dtype(bytes(data[offset : offset + n_dtype]).decode())
    if dtype.hasobject:
        raise ValueError("a packed state array cannot hold Python objects")
    offset += n_dtype
    (ndim,) = struct.unpack_from("<B", data, offset)
    shape = struct.unpack_from(f"<{ndim}I", data, offset + 1)
    offset += 1 + 4 * ndim
    count = int(np.prod(shape, dtype=np.int64))
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape).copy(), offset + count * dtype.itemsize


def _shape_of(row: bytes) -> tuple[int, ...]:
    (n_dtype,) = struct.unpack_from("<B", row, 0)
    (ndim,) = struct.unpack_from("<B", row, 1 + n_dtype)
    return tuple(struct.unpack_from(f"<{ndim}I", row, 2 + n_dtype))


class ArrayCodec(StateCodec):
    """A NumPy array [B, ...]: row b is `state[b]`."""

    def split(self, state: np.ndarray) -> list[bytes]:
        return [pack_array(row) for row in state]

    def join(self, rows: Sequence[bytes]) -> np.ndarray:
        return np.stack([unpack_array(row)[0] for row in rows])

    def group_key(self, row: bytes) -> Hashable:
        return _shape_of(row)


class TensorCodec(StateCodec):
    """A torch tensor [B, ...] (a GRU's hidden state): row b is `state[b]`."""

    def __init__(self) -> None:
        self._header = b""  # the header of the last rows split: rows of one model share it
        self._dtype = np.dtype(np.float32)
        self._shape: tuple[int, ...] = ()

    def split(self, state: torch.Tensor) -> list[bytes]:
        rows = state.detach().cpu().numpy()
        if rows.ndim > 1 and not self._header:
            self._header = pack_array(rows[0])[: -rows[0].nbytes or None]
            self._dtype, self._shape = rows.dtype, rows.shape[1:]
        if self._header and rows.dtype == self._dtype and rows.shape[1:] == self._shape:
            return [self._header + row.tobytes() for row in rows]  # the usual case, fast
        return [pack_array(row) for row in rows]

    def join(self, rows: Sequence[bytes]) -> torch.Tensor:
        header = self._header
        if header and all(row.startswith(header) for row in rows):
            data = b"".join(row[len(header) :] for row in rows)  # a copy: writable
            array = np.frombuffer(bytearray(data), dtype=self._dtype)
            return torch.from_numpy(array.reshape(len(rows), *self._shape))
        return torch.from_numpy(np.stack([unpack_array(row)[0] for row in rows]))

    def group_key(self, row: bytes) -> Hashable:
        return _shape_of(row)


class CountCodec(StateCodec):
    """A state that is only the batch size (popularity): rows are empty."""

    def split(self, state: int) -> list[bytes]:
        return [b""] * state

    def join(self, rows: Sequence[bytes]) -> int:
        return len(rows)


_BATCH_AXIS, _PER_SESSION, _TENSOR = 0, 1, 2


class DataclassCodec(StateCodec):
    """A dataclass whose fields are arrays or tensors [B, ...], or lists of B per-session
    arrays (HGRU4Rec's session and user parts are tensors)."""

    def __init__(self, state_class: type[Any]) -> None:
        self.state_class = state_class
        self.names = [field.name for field in dataclasses.fields(state_class)]

    def split(self, state: Any) -> list[bytes]:
        values = [getattr(state, name) for name in self.names]
        values = [v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v for v in values]
        kinds = [
            _TENSOR if isinstance(getattr(state, name), torch.Tensor) else None
            for name in self.names
        ]
        size = len(values[0])
        rows = []
        for b in range(size):
            parts = []
            for name, value, tensor in zip(self.names, values, kinds, strict=True):
                if tensor is not None:
                    kind = tensor
                elif isinstance(value, np.ndarray):
                    kind = _BATCH_AXIS
                elif isinstance(value, list):
                    kind = _PER_SESSION
                else:
                    raise ValueError(
                        f"state field {name!r} is {type(value).__name__}, not an array or list"
                    )
                packed = pack_array(np.asarray(value[b]))
                parts.append(struct.pack("<BI", kind, len(packed)) + packed)
            rows.append(b"".join(parts))
        return rows

    def _fields(self, row: bytes) -> list[tuple[int, np.ndarray]]:
        fields, offset = [], 0
        for _ in self.names:
            kind, length = struct.unpack_from("<BI", row, offset)
            offset += 5
            array, _ = unpack_array(row[offset : offset + length])
            offset += length
            fields.append((kind, array))
        return fields

    def join(self, rows: Sequence[bytes]) -> Any:
        decoded = [self._fields(row) for row in rows]
        values: dict[str, Any] = {}
        for position, name in enumerate(self.names):
            arrays = [fields[position][1] for fields in decoded]
            kind = decoded[0][position][0] if decoded else _BATCH_AXIS
            if kind == _TENSOR:
                values[name] = torch.from_numpy(np.stack(arrays))
            else:
                values[name] = np.stack(arrays) if kind == _BATCH_AXIS else arrays
        return self.state_class(**values)

    def group_key(self, row: bytes) -> Hashable:
        return tuple(array.shape for kind, array in self._fields(row) if kind != _PER_SESSION)


def codec_for(model: SessionModel[Any, Any]) -> StateCodec:
    """The codec of `model`'s state kind; ValueError when that kind cannot be stored as bytes."""
    probe = model.initial_state(2)
    codec: StateCodec
    own = model.state_codec()
    if own is not None:
        codec = own
    elif isinstance(probe, torch.Tensor):
        codec = TensorCodec()
    elif isinstance(probe, np.ndarray):
        codec = ArrayCodec()
    elif isinstance(probe, int) and not isinstance(probe, bool):
        codec = CountCodec()
    elif dataclasses.is_dataclass(probe) and not isinstance(probe, type):
        codec = DataclassCodec(type(probe))
    else:
        raise ValueError(
            f"model {model.name!r} keeps its state as {type(probe).__name__}, which the server "
            "cannot store: use a tensor, an array or a dataclass of arrays"
        )
    try:
        rows = codec.split(probe)
        codec.join(rows)
    except Exception as exc:
        raise ValueError(
            f"the state of model {model.name!r} cannot be stored as bytes: {exc}"
        ) from exc
    if len(rows) != 2:
        raise ValueError(f"the state of model {model.name!r} does not have one row per session")
    return codec
