"""Running the API under uvicorn, with one or several worker processes.

Before workers start, the parent process creates the tables and settles the API keys, so
that workers neither race to create them nor make different keys. Several workers must
share session state, so they need Redis (NEXTBEST_REDIS_URL); their Prometheus numbers are
summed through a folder under the data folder.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

import uvicorn

from nextbest.serving.auth import resolve_keys
from nextbest.serving.services import init_database
from nextbest.serving.settings import ServingSettings

logger = logging.getLogger(__name__)

METRICS_DIR = ".metrics"


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's and nextbest's log lines, one format, to stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"}
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"level": level.upper()},
            "uvicorn.access": {"level": "WARNING"},
        },
    }


def prepare(settings: ServingSettings, workers: int) -> None:
    """Check the settings and create what workers share; ValueError says what to fix."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, not {workers}")
    if workers > 1 and not settings.redis_url:
        raise ValueError(
            f"{workers} workers must share session state: set NEXTBEST_REDIS_URL "
            "(e.g. redis://127.0.0.1:6379/0), or serve with --workers 1"
        )
    settings.home.mkdir(parents=True, exist_ok=True)
    init_database(settings)
    resolve_keys(
        settings.write_keys,
        settings.read_keys,
        settings.admin_keys,
        settings.keys_file,
        settings.home,
    )
    if workers > 1:
        folder = settings.home / METRICS_DIR
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())


def run(host: str, port: int, workers: int = 1, log_level: str = "info") -> None:
    """Serve the API until interrupted (settings from the NEXTBEST_* environment)."""
    settings = ServingSettings()
    prepare(settings, workers)
    uvicorn.run(
        "nextbest.serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(log_level),
        access_log=False,
        timeout_graceful_shutdown=5,
        server_header=False,
    )
