"""Models by name for the CLI (`nextbest.models.registry` names them) and `--param` parsing."""

from __future__ import annotations

from nextbest.models.registry import MODELS, build_model

__all__ = ["MODELS", "build_model", "parse_params"]


def parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param takes KEY=VALUE, got {pair!r}")
        params[key.strip()] = value.strip()
    return params
