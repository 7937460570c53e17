"""A retraining firing that opened a promotion request ends in the terminal state matching the decision."""

import pytest

from apps.releases.services import promotion
from apps.training.models import FiringStatus, PolicyFiring, RetrainingPolicy
from apps.training.services import retraining
from tests.releases.factories import deploy, set_policy, versions

pytestmark = pytest.mark.django_db


def _firing(dep, candidate, req, n: int):
    policy, _ = RetrainingPolicy.objects.get_or_create(deployment=dep)
    return PolicyFiring.objects.create(policy=policy, trigger="manual", episode_key=f"manual:{n}", reason="test",
                                       status=FiringStatus.AWAITING_REVIEW, version=candidate,
                                       promotion_request_id=req.pk)


@pytest.mark.parametrize("decision, expected", [("approve", FiringStatus.PROMOTED),
                                                ("reject", FiringStatus.REJECTED),
                                                ("withdraw", FiringStatus.STOPPED)])
def test_firing_follows_its_promotion_requests_decision(project, users, decision, expected):
    weak, strong = versions(project, users["data_scientist"])
    dep, _ = deploy(project, users["owner"], weak)
    set_policy(project, users["owner"], min_shadow_requests=0)
    req = promotion.promotion_request_open(deployment=dep, actor=users["data_scientist"], candidate=strong,
                                           justification="retrained")
    firing = _firing(dep, strong, req, 1)
    retraining.retraining_tick()
    firing.refresh_from_db()
    assert firing.status == FiringStatus.AWAITING_REVIEW  # still open: waits
    if decision == "withdraw":
        promotion.promotion_request_withdraw(request=req, actor=users["data_scientist"])
    else:
        args = {"decision": decision, "comment": "checked the evidence", "evidence_hash": req.evidence_hash,
                "artifact_sha256": req.artifact_sha256}
        if decision == "approve" and not req.gates_passed:
            args["override_reason"] = "offline evidence is enough here"
        promotion.promotion_request_review(request=req, reviewer=users["reviewer"], **args)
    retraining.retraining_tick()
    firing.refresh_from_db()
    assert firing.status == expected, firing.outcome
    assert f"#{req.pk}" in firing.outcome and firing.steps[-1]["step"] == "decided"
