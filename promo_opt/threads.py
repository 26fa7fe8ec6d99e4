"""How many threads a fit may use: the cores that are actually free, not the cores that exist.

Why: LightGBM (and BLAS) start one thread per requested core and spin-wait at every iteration's
barrier. When another CPU-bound process holds a core, a fit with more threads than free cores
stalls at each barrier until the descheduled thread runs again; on a 2-core machine shared with
one busy neighbour that was measured at 10-100x slower (issue 16). One thread on the free core
is then faster than two fighting for one.

:func:`free_cores` reads the machine's idle time over a short window (``/proc/stat``; the
1-minute load average is too slow to follow a neighbour that just started) and
:func:`thread_budget` holds the result for the fits of one job in a context variable, read by
the learners when they build their models (:func:`lgbm_threads`).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time

_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar("promo_opt_threads", default=None)
ENV = "PROMO_OPT_THREADS"  # an explicit thread count (scheduler slots, reproducible benchmarks)


def machine_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[float, float] | None:
    """(available, total) jiffies of all CPUs, or None where /proc/stat is not readable.

    Available: idle and iowait time only. A neighbour at a positive nice level still takes its
    slices, and one descheduled thread stalls LightGBM's barrier: measured here, a 100k-row fit
    with 2 threads took 82-119 s next to a few ``nice -n 19`` jobs, with 1 thread 10 s.
    """
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return None
    if not parts or parts[0] != "cpu":
        return None
    values = [float(x) for x in parts[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return idle, sum(values[:8])


def free_cores(window: float = 0.3) -> int:
    """Cores idle over the last ``window`` seconds (rounded, at least 1, at most :func:`machine_cores`).

    ``PROMO_OPT_THREADS`` set to a positive integer overrides the measurement.
    """
    cores = machine_cores()
    env = os.environ.get(ENV, "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n > 0:
            return min(n, cores)
    a = _cpu_times()
    if a is None:
        return cores
    time.sleep(window)
    b = _cpu_times()
    if b is None or b[1] <= a[1]:
        return cores
    n_cpu = os.cpu_count() or cores
    idle_cores = (b[0] - a[0]) / (b[1] - a[1]) * n_cpu
    return int(min(cores, max(1, round(idle_cores))))


def lgbm_threads() -> int:
    """Threads for one LightGBM fit: the job's budget, else the machine's cores."""
    n = _THREADS.get()
    return n if n is not None else machine_cores()


@contextlib.contextmanager
def thread_budget(n: int | None = None):
    """Within the block, fits use ``n`` threads (default: :func:`free_cores`, measured now).

    BLAS/OpenMP pools are limited to the same count (threadpoolctl), so numpy and scikit-learn
    steps do not oversubscribe either. Yields the count.
    """
    from threadpoolctl import threadpool_limits

    n = free_cores() if n is None else max(1, int(n))
    token = _THREADS.set(n)
    try:
        with threadpool_limits(limits=n):
            yield n
    finally:
        _THREADS.reset(token)
