"""Split labelled rows by time into train and holdout (pure: numpy in, a frozen dataclass out).

Rows whose event time is before the split time train the model; rows at or after it are the holdout,
so nothing the model learns from happened after anything it is judged on. With a fraction instead of
a time, the split time is the event time at which the newest ``fraction`` of the rows start; rows
sharing that time all go to the holdout (ties never straddle the split).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np


class SplitError(ValueError):
    pass


@dataclass(frozen=True)
class TimeSplit:
    train_index: np.ndarray  # positions of the training rows, in time order
    holdout_index: np.ndarray  # positions of the holdout rows, in time order
    split_time: datetime  # train < split_time <= holdout
    train_start: datetime
    holdout_end: datetime

    @property
    def n_train(self) -> int:
        return int(len(self.train_index))

    @property
    def n_holdout(self) -> int:
        return int(len(self.holdout_index))


def _as_ns(times) -> np.ndarray:
    arr = np.asarray(times)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[ns]").astype("int64")
    if arr.dtype == object:
        return np.array([int(_utc(t).timestamp() * 1_000_000) * 1000 for t in arr], dtype="int64")
    raise SplitError("event times must be datetimes")


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _to_dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def time_split(times, *, split_at: datetime | None = None, holdout_fraction: float | None = 0.2,
               min_train: int = 10, min_holdout: int = 5) -> TimeSplit:
    """Split by ``split_at`` when given, else so that about ``holdout_fraction`` of rows are held out."""
    ns = _as_ns(times)
    n = len(ns)
    if n == 0:
        raise SplitError("there are no labelled rows to split")
    order = np.argsort(ns, kind="stable")
    sorted_ns = ns[order]
    if split_at is not None:
        cut = int(_utc(split_at).timestamp() * 1_000_000) * 1000
    else:
        if holdout_fraction is None or not 0 < holdout_fraction < 1:
            raise SplitError("the holdout fraction must be between 0 and 1 (exclusive)")
        k = max(1, int(round(n * holdout_fraction)))
        cut = int(sorted_ns[n - k])
    pos = int(np.searchsorted(sorted_ns, cut, side="left"))
    train, holdout = order[:pos], order[pos:]
    if len(train) < min_train:
        raise SplitError(f"only {len(train)} labelled row(s) fall before the split time {_to_dt(cut):%Y-%m-%d %H:%M} "
                         f"UTC; training needs at least {min_train}")
    if len(holdout) < min_holdout:
        raise SplitError(f"only {len(holdout)} labelled row(s) fall at or after the split time "
                         f"{_to_dt(cut):%Y-%m-%d %H:%M} UTC; the holdout needs at least {min_holdout}")
    return TimeSplit(train_index=train, holdout_index=holdout, split_time=_to_dt(cut),
                     train_start=_to_dt(int(sorted_ns[0])), holdout_end=_to_dt(int(sorted_ns[-1])))
