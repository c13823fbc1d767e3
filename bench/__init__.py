"""Benchmarks: scripts that print tables (``make bench``); never timed assertions in tests."""

from pathlib import Path


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident set now, or ``VmHWM``: its peak. Not ``ru_maxrss``: a child's starts
    at its parent's peak (exec keeps the high-water mark of the memory it replaces), so a child
    started after the parent held a million ids read +128 MB it never had (bench.rss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0
