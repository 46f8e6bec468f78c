"""How many CPU threads the commands give PyTorch: the idle physical cores, so a busy machine is not oversubscribed.

PyTorch's own default is one thread per physical core, whatever else runs. On a 2-core machine that other jobs
keep busy, its two threads were 2 to 5 times slower than one (docs/cli.md, "Speed and memory"): each waits for
the other at every operation. The rule here: ``--threads N`` if given, else ``OMP_NUM_THREADS`` if set, else the
logical CPUs the 1-minute load average leaves idle (rounded), capped at the physical cores, and at least one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

THREADS_VARIABLE = "OMP_NUM_THREADS"


def usable_cpus() -> list[int]:
    """The logical CPUs this process may run on (its affinity where the system reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def physical_cores(cpus: list[int]) -> int:
    """How many physical cores ``cpus`` span (hyper-thread siblings counted once); ``len(cpus)`` where unknown."""
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def choose_threads(
    cores: int, cpus: int, load: float | None, requested: int | None = None, environment: str | None = None
) -> int:
    """The thread count by the module's rule, from the physical ``cores``, logical ``cpus`` and load average.

    ``environment`` is the value of ``OMP_NUM_THREADS`` (None when unset; ignored unless a positive whole number),
    ``load`` the 1-minute load average (None where the system has none: then all physical cores).
    """
    if requested is not None:
        return requested
    if environment is not None and environment.strip().isdigit() and int(environment) > 0:
        return int(environment)
    if load is None:
        return max(1, cores)
    return max(1, min(cores, math.floor(cpus - load + 0.5)))


def command_threads(requested: int | None = None) -> int:
    """:func:`choose_threads` for this process, now: its CPUs, the load average and ``OMP_NUM_THREADS``."""
    cpus = usable_cpus()
    try:
        load: float | None = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on Windows
        load = None
    return choose_threads(physical_cores(cpus), len(cpus), load, requested, os.environ.get(THREADS_VARIABLE))
