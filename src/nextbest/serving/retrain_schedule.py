"""`nextbest serve --retrain-every 6h`: a thread of the serving process that runs
`nextbest train --from-log` on a schedule, each in a process of its own (the retrain's CPU and
memory stay out of the workers; the retrain lock keeps it from overlapping a cron job's)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

from nextbest.durations import parse_duration

logger = logging.getLogger(__name__)

MINIMUM_SECONDS = 1.0


def parse_every(text: str) -> float:
    """'90s', '30m', '6h' or '1d' in seconds; ValueError naming the option otherwise."""
    return parse_duration(text, "--retrain-every", MINIMUM_SECONDS)


class RetrainSchedule(threading.Thread):
    """Every `every` seconds (the first run one interval after the start), one retrain."""

    def __init__(self, every: float) -> None:
        super().__init__(name="retrain-schedule", daemon=True)
        self.every = every
        self.stopping = threading.Event()
        self.runs = 0

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            self.retrain_once()

    def retrain_once(self) -> int:
        command = [sys.executable, "-m", "nextbest.cli.main", "train", "--from-log"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        self.runs += 1
        lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        outcome = next(
            (line for line in reversed(lines) if line.startswith(("promoted", "kept", "error"))),
            lines[-1] if lines else "no output",
        )
        if done.returncode == 0:
            logger.info("scheduled retrain: %s", outcome)
        else:
            logger.error("scheduled retrain failed (exit %d): %s", done.returncode, outcome)
        return done.returncode

    def stop(self) -> None:
        self.stopping.set()
