"""Is anything else using the CPU? Measured before each stage, because on a small machine a neighbour's job
changes the figures (the naive baseline's torch threads collapse first) and a ratio measured then is wrong."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import psutil


def _tree_cpu_seconds() -> float:
    """CPU seconds of this process and its children (vLLM's engine core, the broker): the bench's own work."""
    total = 0.0
    for process in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a helper that exits meanwhile counts as idle
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return times.user + times.system + times.nice + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)


def other_cores_busy(interval_s: float = 1.0) -> float:
    """Cores kept busy over `interval_s` by processes outside this process tree."""
    machine, own = _busy_seconds(), _tree_cpu_seconds()
    time.sleep(interval_s)
    other = (_busy_seconds() - machine) - (_tree_cpu_seconds() - own)
    return max(0.0, other / interval_s)


@dataclass(frozen=True)
class QuietCheck:
    """Before a stage: wait up to `wait_s` for other processes to use under `threshold_cores`, then go on."""

    threshold_cores: float = 0.3
    wait_s: float = 60.0
    interval_s: float = 1.0

    def wait(self) -> tuple[bool, float]:
        """(quiet, the last load measured): False when the machine stayed busy for the whole wait."""
        deadline = time.monotonic() + self.wait_s
        while True:
            load = other_cores_busy(self.interval_s)
            if load < self.threshold_cores:
                return True, round(load, 2)
            if time.monotonic() >= deadline:
                return False, round(load, 2)
