"""What the benchmarks share: timed calls and their p50/p95 in milliseconds."""

from __future__ import annotations

import time

import numpy as np


def percentiles(samples_s: list[float]) -> dict:
    """p50 and p95 of timings given in seconds, in milliseconds, and how many there were."""
    ms = np.asarray(samples_s) * 1000
    return {
        "p50": round(float(np.percentile(ms, 50)), 3),
        "p95": round(float(np.percentile(ms, 95)), 3),
        "n": int(len(ms)),
    }


def timed(fn, repeats: int, warmup: int = 3) -> list[float]:
    """`fn()`'s duration in seconds, `repeats` times, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples
