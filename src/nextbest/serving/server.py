"""Running the API under uvicorn, with one or several worker processes.

Before workers start, the parent process creates the tables and settles the API keys, so
that workers neither race to create them nor make different keys. Several workers must
share session state, so they need Redis (NEXTBEST_REDIS_URL); their Prometheus numbers are
summed through a folder under the data folder.

Each worker listens on the port itself (SO_REUSEPORT), so the kernel spreads connections
evenly over the workers. With one shared listening socket (uvicorn's own `--workers`), the
worker that waited last takes the next connection, and long-lived client connections pile
up on one worker while the other idles. The parent restarts a worker that dies.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import threading
import time
from typing import Any

import uvicorn

from nextbest.recommend.placements import load_placements
from nextbest.serving.auth import KeyRing, resolve_keys
from nextbest.serving.services import init_database
from nextbest.serving.settings import ServingSettings

logger = logging.getLogger(__name__)
GIL_SWITCH_SECONDS = 0.0005

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
    every = [settings, *(settings.for_tenant(name) for name in settings.tenants)]
    rings = []
    for one in every:
        one.home.mkdir(parents=True, exist_ok=True)
        init_database(one)
        try:
            rings.append(resolve_keys(one.fixed_keys, one.keys_file, one.home, one.demo))
        except ValueError as exc:
            if one.tenant is None:
                raise
            raise ValueError(
                f"tenant {one.tenant!r} has no API keys: run `NEXTBEST_TENANT={one.tenant} "
                f"nextbest keys new` (writes {one.home / 'api-keys.json'})"
            ) from exc
    check_tenant_keys(every, rings)
    if workers > 1:
        folder = settings.home / METRICS_DIR
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())


def run(host: str, port: int, workers: int = 1, log_level: str = "info") -> None:
    """Serve the API until interrupted (settings from the NEXTBEST_* environment)."""
    settings = ServingSettings()
    load_placements(settings.placements)  # a bad placements file stops here, with its key
    prepare(settings, workers)
    if workers == 1:
        serve_worker(host, port, log_level, reuse_port=False)
        return
    supervise(host, port, workers, log_level)


def serve_worker(host: str, port: int, log_level: str, reuse_port: bool = True) -> None:
    """One server process on its own listening socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    # Not `listen()` here: the event loop listens once the app has started (model loaded),
    # so the kernel hands a starting worker no connection it cannot answer yet.
    config = uvicorn.Config(
        "nextbest.serving.app:create_app",
        factory=True,
        log_config=log_config(log_level),
        access_log=False,
        timeout_graceful_shutdown=5,
        server_header=False,
        backlog=2048,
    )
    if reuse_port:  # a worker of `supervise`: stop when the parent is gone
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    # The background threads (group commit, live counts, catalog refresh) run Python code in
    # bursts of several milliseconds; with the default 5 ms switch interval a request waiting
    # on the event loop waits that long for the GIL. 0.5 ms bounds that wait at little cost.
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    uvicorn.Server(config).run(sockets=[listener])


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    logger.warning("the supervising process %d is gone: shutting down", parent)
    os.kill(os.getpid(), signal.SIGTERM)


def supervise(host: str, port: int, workers: int, log_level: str) -> None:
    """Start `workers` processes, restart any that dies, stop them all on SIGTERM/SIGINT."""
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=serve_worker, args=(host, port, log_level), daemon=False)
        process.start()
        return process

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    processes = [start() for _ in range(workers)]
    logger.info("serving on http://%s:%d with %d workers", host, port, workers)
    while not stopping.wait(0.5):
        for index, process in enumerate(processes):
            if not process.is_alive():
                logger.error(
                    "worker %s exited (code %s): starting another", process.pid, process.exitcode
                )
                processes[index] = start()
    for process in processes:
        process.terminate()  # uvicorn's graceful shutdown
    for process in processes:
        process.join(timeout=15)
        if process.is_alive():
            process.kill()


def check_tenant_keys(every: list[ServingSettings], rings: list[KeyRing]) -> None:
    """Refuse keys that two tenants share: a key names its tenant, so it must be one's only."""
    seen: dict[str, str] = {}
    for one, ring in zip(every, rings, strict=True):
        keys = ring.current
        for key in (*keys.write, *keys.read, *keys.admin, *keys.browser):
            owner = one.tenant or "(the default shop)"
            if seen.setdefault(key, owner) != owner:
                raise ValueError(
                    f"an API key of tenant {owner} is also {seen[key]}'s: every tenant needs "
                    "keys of its own"
                )
