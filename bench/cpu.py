"""CPU time of processes and threads, read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


def cpu_ticks(stat_path: str) -> int:
    """User plus system time, in clock ticks, of the process or thread whose stat file this is;
    0 once it is gone."""
    try:
        fields = Path(stat_path).read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def cpu_seconds(pid: int) -> float:
    """CPU time the process has used so far, all its threads included."""
    return cpu_ticks(f"/proc/{pid}/stat") / CLOCK_TICKS
