"""A model's contract changes its value rules (unknown-category policy, categories, nullable) and every
serving process follows; names, order and types never change under a served version."""

import pytest

from apps.projects.models import AuditEvent
from apps.registry import services

pytestmark = pytest.mark.django_db


def test_contract_update_changes_only_the_value_rules_and_serving_follows(project, users, client,
                                                                          django_capture_on_commit_callbacks):
    import json

    from apps.common.errors import Conflict, InvalidInput
    from apps.deployments import serving
    from apps.deployments.services import serving_generation_bump
    from tests.deployments.factories import deploy, make_ready_mixed_version

    owner = users["owner"]
    version = make_ready_mixed_version(project=project, actor=owner)
    _, key = deploy(project=project, actor=owner, version=version, slug="churn-api")
    row = {"country": "BR", "Monthly Spend ($)": 40.0, "plan": "pro", "tenure months": 3}

    def call():
        return client.post("/api/v1/deployments/churn-api/predict", json.dumps({"instances": [row]}),
                           content_type="application/json", headers={"Authorization": f"Bearer {key}"})

    assert call().status_code == 422
    model = version.model
    contract = [dict(c) for c in model.input_contract]
    contract[0]["unknown"] = "pass"
    with django_capture_on_commit_callbacks() as callbacks:
        services.registered_model_contract_update(model=model, actor=users["data_scientist"], input_contract=contract)
    assert len(callbacks) == 1  # the serving state is invalidated after commit (a worker task)
    event = AuditEvent.objects.get(verb="model.contract_update")
    assert event.details["changes"] == {"country": {"unknown": ["refuse", "pass"]}}
    serving_generation_bump()  # what that task does
    serving.CACHE._checked = 0.0
    resp = call()
    assert resp.status_code == 200, resp.content  # the encoder ignores it; monitoring counts it as unseen

    renamed = [{**contract[0], "name": "Country"}, *contract[1:]]
    with pytest.raises(InvalidInput, match="Only nullable, categories and the unknown-category policy can change"):
        services.registered_model_contract_update(model=model, actor=owner, input_contract=renamed)
    retyped = [*contract[:3], {**contract[3], "type": "float"}]
    with pytest.raises(InvalidInput, match="'tenure months' is int, not float"):
        services.registered_model_contract_update(model=model, actor=owner, input_contract=retyped)
    pending = services.registered_model_create(project=project, actor=owner, name="later",
                                               task="binary_classification", input_contract="infer")
    with pytest.raises(Conflict, match="no contract yet"):
        services.registered_model_contract_update(model=pending, actor=owner, input_contract=contract)
