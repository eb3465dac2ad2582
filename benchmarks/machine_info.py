"""What a benchmark ran on, recorded beside its figures.

Timings only compare within one machine: the 2-core VMs these runs use differ by 2-3x on the
same code (an AMD EPYC against an Intel Xeon), and `platform.processor()` says only "x86_64"
on Linux, so the CPU's model name is read from /proc/cpuinfo.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import torch


def cpu_name() -> str:
    """The CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) ..."), or the architecture."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.machine()


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def load_summary(load: dict[str, str], other_cpu: dict[str, float]) -> str:
    """One phrase for what else ran: the 1-minute load average before the parts (their range)
    and the most cores other processes used during one part. The per-part figures are in the
    JSON the benchmark prints."""
    ones = [float(value.split()[0]) for value in load.values()]
    others = [float(value) for value in other_cpu.values()]
    span = f"{min(ones):.2f}" if min(ones) == max(ones) else f"{min(ones):.2f}-{max(ones):.2f}"
    return (
        f"load average {span} before the parts; other processes (Redis among them) used at "
        f"most {max(others):.2f} cores during a part"
    )
