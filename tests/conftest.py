"""Shared test fixtures: where the real datasets live, and skips that say why."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# Tests must not fight over the two cores with intra-op threads of their own.
torch.set_num_threads(1)

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SHARED_DATASETS.exists():
        return
    skip = pytest.mark.skip(reason=f"real datasets not found at {SHARED_DATASETS}")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared_datasets() -> Path:
    if not SHARED_DATASETS.exists():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


# PostgreSQL and Redis fixtures (`pg_schema`, `redis_prefix`) for the backend test suites.
pytest_plugins = ["backends"]
