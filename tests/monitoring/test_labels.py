from datetime import UTC, datetime
from types import SimpleNamespace

from apps.monitoring.selectors import _labels


def _w(*args):
    return SimpleNamespace(end=datetime(*args, tzinfo=UTC))


def test_window_labels_are_unique_so_plotly_does_not_merge_windows():
    assert _labels([_w(2026, 1, 1, 10, 0), _w(2026, 1, 1, 10, 15)]) == ["01-01 10:00", "01-01 10:15"]
    assert _labels([_w(2026, 1, 1, 10, 0, 1), _w(2026, 1, 1, 10, 0, 2)]) == ["01-01 10:00:01", "01-01 10:00:02"]
    same = _labels([_w(2026, 1, 1, 10, 0, 1), _w(2026, 1, 1, 10, 0, 1)])
    assert len(set(same)) == 2 and same[0].endswith("#1")
