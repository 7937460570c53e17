"""Per-minute latency histograms and percentiles (pure: no Django)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

# Upper bounds (ms) of the latency buckets; the last bucket is open-ended.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000,
)
N_BUCKETS = len(LATENCY_BUCKETS_MS) + 1


def bucket_of(latency_ms: float) -> int:
    return bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)


def empty_hist() -> list[int]:
    return [0] * N_BUCKETS


def merge(into: list[int], other: list[int]) -> list[int]:
    if len(into) < N_BUCKETS:
        into = list(into) + [0] * (N_BUCKETS - len(into))
    for i, v in enumerate(other[:N_BUCKETS]):
        into[i] += v
    return into


def percentile(hist: list[int], q: float) -> float | None:
    """The q-quantile (0..1) from a bucket histogram, linearly interpolated inside the bucket."""
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(hist):
        if count and seen + count >= rank:
            lo = LATENCY_BUCKETS_MS[i - 1] if i > 0 else 0.0
            hi = LATENCY_BUCKETS_MS[i] if i < len(LATENCY_BUCKETS_MS) else LATENCY_BUCKETS_MS[-1] * 2
            frac = (rank - seen) / count
            return lo + (hi - lo) * max(0.0, min(1.0, frac))
        seen += count
    return LATENCY_BUCKETS_MS[-1] * 2


@dataclass(frozen=True)
class MinutePoint:
    minute: object
    requests: int
    errors: int
    rows: int
    p50: float | None
    p95: float | None
    p99: float | None

    @property
    def error_rate(self) -> float:
        total = self.requests + self.errors
        return self.errors / total if total else 0.0
