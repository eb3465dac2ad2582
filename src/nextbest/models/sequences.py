"""Padded batches of item sequences cut from `Sessions`, shared by the neural session models."""

from __future__ import annotations

import numpy as np
import torch


def gather(
    items: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, T] int64 sequences items[starts[b] : starts[b] + lengths[b]], left-aligned with 0
    after each end, and their lengths [B] (T = the largest length)."""
    width = int(lengths.max()) if len(lengths) else 0
    offsets = np.arange(width)
    index = starts[:, None] + offsets[None, :]  # [B, T]
    real = offsets[None, :] < lengths[:, None]
    out = np.where(real, items[np.minimum(index, len(items) - 1)], 0)
    return torch.from_numpy(out.astype(np.int64)), torch.from_numpy(lengths.astype(np.int64))
