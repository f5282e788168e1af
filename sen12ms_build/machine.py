"""What the machine gives this process (a base module: it imports none of the package)."""

from __future__ import annotations

import os


def run_cores() -> int:
    """The cores this process may use: its CPU affinity (what ``taskset``, a container or a
    batch scheduler gave it), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


__all__ = ["run_cores"]
