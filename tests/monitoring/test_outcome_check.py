"""Outcome labels against the model's classes (pure: no database)."""

from datetime import UTC, datetime

import pytest

from apps.monitoring.outcome_check import label_problem, parse_observed_at

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("label, classes, ok", [
    (1, [0, 1], True), (1.0, [0, 1], False), ("1", [0, 1], False), (True, [0, 1], False),
    ("churned", ["churned", "stayed"], True), ("Churned", ["churned", "stayed"], False),
    (True, [False, True], True), (1, [False, True], False),
    (2, [0.0, 2.0], True), ("a", [], True),
])
def test_classification_labels_follow_the_classes_types(label, classes, ok):
    assert (label_problem(label, task="binary_classification", classes=classes) is None) is ok


@pytest.mark.parametrize("label, ok", [(1, True), (2.5, True), (float("inf"), False), (float("nan"), False),
                                       (True, False), ("2.5", False), (None, False)])
def test_regression_labels_are_finite_numbers(label, ok):
    assert (label_problem(label, task="regression", classes=None) is None) is ok


@pytest.mark.parametrize("value, ok", [(None, True), ("2026-11-25T11:00:00Z", True), ("2026-11-25", True),
                                       ("2026-11-25T11:00:00+01:00", True), ("not-a-date", False), (17, False),
                                       ("2026-11-25T13:00:00Z", False), ("x" * 100, False)])
def test_observed_at_must_parse_and_not_be_in_the_future(value, ok):
    when, problem = parse_observed_at(value, now=NOW)
    assert (problem is None) is ok
    if value == "2026-11-25":
        assert when == datetime(2026, 11, 25, tzinfo=UTC)  # no zone: UTC
