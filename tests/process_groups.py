"""What the tests of training across processes share: spawned processes in one gloo process
group on 127.0.0.1, and the real CLI started by torchrun."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch.distributed as dist
import torch.multiprocessing as mp

import nextbest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_group(target: Callable[..., None], args: tuple[Any, ...], world: int = 2) -> None:
    """`target(rank, *args)` in `world` spawned processes that share one gloo process group
    on 127.0.0.1 (`target` and `args` picklable: a test module's function); returns when all
    have ended, and raises here what one of them raised."""
    mp.start_processes(
        _in_group, args=(world, free_port(), target, args), nprocs=world, start_method="spawn"
    )


def _in_group(
    rank: int, world: int, port: int, target: Callable[..., None], args: tuple[Any, ...]
) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        target(rank, *args)
    finally:
        dist.destroy_process_group()


def torchrun_nextbest(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    processes: int = 2,
    timeout: float = 180.0,
) -> subprocess.CompletedProcess[str]:
    """`python -m torch.distributed.run --standalone --nproc-per-node N -m nextbest ARGS`:
    the real CLI in N processes on localhost, with this checkout's nextbest importable and
    `env` added to the environment."""
    source = str(Path(nextbest.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", str(processes), "-m", "nextbest", *args]
    return subprocess.run(
        command,
        env={**os.environ, "PYTHONPATH": path, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
