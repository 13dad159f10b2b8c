"""Memory and disk the data needs, checked before anything is generated or written."""

import os
from pathlib import Path

from convgru.atomic import size_text


def _cgroup_free() -> int | None:
    """Memory left under this process's cgroup (v2) limit, or None when there is no limit."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()), 0)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes of memory this process can still use (MemAvailable, or free pages, within a cgroup limit);
    None where the system does not tell."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    limit = _cgroup_free()
    return available if limit is None else min(available, limit)


def check_memory(needed: int, what: str, advice: str) -> None:
    """Raise ValueError `<what> needs about N of memory, M available; <advice>` when `needed` bytes
    exceed the memory available (checked before generating data in memory)."""
    available = available_memory()
    if available is not None and needed > available:
        raise ValueError(f"{what} needs about {size_text(needed)} of memory, {size_text(available)} available; "
                         f"{advice}")
