"""Pure scoring (no database)."""

import subprocess
import sys

from apps.readiness import mltestscore, scoring
from apps.readiness.scoring import FAIL, PASS, WARN, ItemResult, StageFacts


def test_scoring_module_imports_no_django():
    code = "import apps.readiness.scoring, apps.readiness.mltestscore, sys; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rubric_has_28_tests_seven_per_group():
    assert len(mltestscore.TESTS) == 28
    assert {g: sum(t.group == g for t in mltestscore.TESTS) for g in mltestscore.GROUPS} == dict.fromkeys(
        mltestscore.GROUPS, 7)
    assert len(mltestscore.BY_KEY) == 28


def test_grade_both_directions_and_unmeasured():
    assert scoring.grade(0.9, pass_at=0.8, warn_at=0.5) == PASS
    assert scoring.grade(0.6, pass_at=0.8, warn_at=0.5) == WARN
    assert scoring.grade(0.1, pass_at=0.8, warn_at=0.5) == FAIL
    assert scoring.grade(3, pass_at=14, warn_at=42, higher_is_better=False) == PASS
    assert scoring.grade(20, pass_at=14, warn_at=42, higher_is_better=False) == WARN
    assert scoring.grade(50, pass_at=14, warn_at=42, higher_is_better=False) == FAIL
    assert scoring.grade(None, pass_at=1, warn_at=0) == FAIL


def _item(status, **kw):
    return ItemResult(key="k", section="s", title="t", status=status, figure="", **kw)


def test_readiness_score_is_mean_of_points():
    assert scoring.readiness_score([_item(PASS), _item(WARN), _item(FAIL), _item(PASS)]) == 63
    assert scoring.readiness_score([]) == 0


def test_ml_test_score_is_minimum_over_groups_with_breck_points():
    groups = {"a": "", "b": ""}
    items = [_item(PASS, source="auto", extra={"group": "a"}),  # 1
             _item(WARN, source="answer", answer="manual", extra={"group": "a"}),  # 0.5
             _item(PASS, source="answer", answer="automated", extra={"group": "b"}),  # 1
             _item(FAIL, source="none", extra={"group": "b"})]  # 0
    result = scoring.ml_test_score(items, groups)
    assert result["groups"] == {"a": 1.5, "b": 1.0}
    assert result["final"] == 1.0


def test_stage_ladder():
    assert scoring.stage_for(StageFacts()) == "prototype"
    assert scoring.stage_for(StageFacts(ready_versions=1)) == "registered"
    assert scoring.stage_for(StageFacts(ready_versions=1, shadow_runs=1)) == "shadow"
    assert scoring.stage_for(StageFacts(ready_versions=1, deployments=1)) == "shadow"
    assert scoring.stage_for(StageFacts(ready_versions=1, deployments=1, live_with_traffic=1)) == "production"
    assert scoring.stage_for(StageFacts(ready_versions=1, deployments=1, live_with_traffic=1, monitored=1)) == "monitored"


def test_format_helpers():
    assert scoring.format_duration(30) == "30 s"
    assert scoring.format_duration(3 * 86400) == "3.0 days"
    assert scoring.format_share(0.256) == "26 %"
    assert scoring.format_share(None) == "—"
