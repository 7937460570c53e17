"""The pure time split (no database)."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from apps.registry.timesplit import SplitError, time_split

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _times(n, step_min=60, shuffle=True):
    times = np.array([T0 + timedelta(minutes=step_min * i) for i in range(n)], dtype=object)
    if shuffle:
        np.random.default_rng(0).shuffle(times)
    return times


def test_time_split_by_fraction_puts_the_newest_rows_in_the_holdout():
    times = _times(100)
    split = time_split(times, holdout_fraction=0.2)
    assert split.n_train == 80 and split.n_holdout == 20
    assert max(times[split.train_index]) < split.split_time <= min(times[split.holdout_index])
    assert split.split_time == T0 + timedelta(hours=80)


def test_time_split_never_lets_ties_straddle_the_split():
    times = np.array([T0] * 10 + [T0 + timedelta(hours=1)] * 10 + [T0 + timedelta(hours=2)] * 10, dtype=object)
    split = time_split(times, holdout_fraction=0.5, min_train=1, min_holdout=1)
    train_times, hold_times = set(times[split.train_index]), set(times[split.holdout_index])
    assert not train_times & hold_times
    assert split.n_train == 10 and split.n_holdout == 20


def test_time_split_at_a_given_time_and_numpy_datetimes():
    times = np.array([np.datetime64("2024-01-01T00:00") + np.timedelta64(i, "h") for i in range(50)])
    split = time_split(times, split_at=T0 + timedelta(hours=40))
    assert split.n_train == 40 and split.n_holdout == 10


@pytest.mark.parametrize("kwargs, message", [
    ({"split_at": T0 + timedelta(hours=2)}, "training needs at least"),
    ({"split_at": T0 + timedelta(hours=99)}, "the holdout needs at least"),
    ({"holdout_fraction": 1.5}, "between 0 and 1"),
])
def test_time_split_refuses_splits_that_leave_a_side_too_small(kwargs, message):
    with pytest.raises(SplitError, match=message):
        time_split(_times(100), **kwargs)


def test_time_split_of_nothing_says_so():
    with pytest.raises(SplitError, match="no labelled rows"):
        time_split(np.array([], dtype=object))


def test_timesplit_imports_no_django():
    code = "import apps.registry.timesplit, sys; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
