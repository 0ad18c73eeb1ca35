"""The memory allocator of mt3's commands: tcmalloc where it is installed (Linux).

XLA's CPU runtime allocates and frees its large buffers at every step. glibc's malloc hands
buffers that large back to the kernel when they are freed and faults them in again at the next
step: in the demo's training (`perf` on 2 cores) 27 % of the CPU time was system time, nearly
all of it page faults. tcmalloc keeps the freed memory for the next step: the demo trains at
7.8 steps/s instead of 5.6, with 2 s of system time instead of 38, the same losses, and no more
memory. ``scripts/setup.sh`` installs it (Debian/Ubuntu: libtcmalloc-minimal4).

A preload must be in place when the process starts, so the ``mt3`` command re-runs itself once
with ``LD_PRELOAD`` set (the same process id, arguments and environment otherwise), before it
imports JAX. ``MT3_ALLOCATOR=system`` keeps glibc's malloc. Python code that imports mt3 keeps
its own process's allocator: start Python with ``LD_PRELOAD`` for the same gain.
"""

from __future__ import annotations

import os
import sys

ALLOCATOR_ENV = "MT3_ALLOCATOR"
LIBRARIES = ("tcmalloc_minimal", "tcmalloc")


def find_tcmalloc() -> str | None:
    """The tcmalloc shared library's name as the dynamic loader finds it, or None."""
    import ctypes.util

    for name in LIBRARIES:
        found = ctypes.util.find_library(name)
        if found:
            return found
    return None


def use_tcmalloc(command: list[str] | None = None) -> None:
    """Re-run this process's command (default: ``python -m mt3`` with its arguments) with
    tcmalloc preloaded, unless it is already loaded, is not installed, the platform is not Linux
    or MT3_ALLOCATOR=system; returns when it does not re-run."""
    preload = os.environ.get("LD_PRELOAD", "")
    if sys.platform != "linux" or "tcmalloc" in preload:
        return
    if os.environ.get(ALLOCATOR_ENV, "").strip().lower() in ("system", "glibc", "off"):
        return
    library = find_tcmalloc()
    if library is None:
        return
    environment = {
        **os.environ,
        "LD_PRELOAD": f"{library} {preload}".strip(),
        "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40),  # no "large alloc" lines
    }
    command = command or [sys.executable, "-m", "mt3", *sys.argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, environment)
