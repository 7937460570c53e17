"""The demo organisation, loaded once for this module through the real services with REAL Celery workers
(jobs are sent to the broker and run by the session's worker), then:

- its resulting state is checked (stages, the drift alert open, a promotion request waiting);
- one Playwright test per persona walks it: the manager reads the portfolio and a readiness page; the
  data scientist uploads a model; the reviewer approves the waiting promotion; the analyst opens the drift
  dashboard. Screenshots go to test-artifacts/screenshots/readiness-*.png;
- a second load changes nothing (idempotent).

The demo is loaded once (about a minute) and served by this module's own live-server thread, so the
browser tests do not flush it between tests; the database is flushed when the module ends.
"""

import io
import re

import pytest
from playwright.sync_api import expect

DEMO_PASSWORD = "slipway-demo"
# The module fixture keeps database access open and commits the demo; the browser tests carry no db mark, so
# no test transaction holds a lock while the live server writes (SQLite) and nothing flushes the demo between
# tests (a transactional mark would). The two checks that read/write from this thread use plain django_db.
pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker, celery_worker):
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.management import call_command
    from django.db import connections
    from django.test.testcases import LiveServerThread

    from apps.readiness.demo import demo_load

    db_settings = connections["default"].settings_dict
    max_age = db_settings.get("CONN_MAX_AGE", 0)
    db_settings["CONN_MAX_AGE"] = 0  # the server's request threads close their connections
    with django_db_blocker.unblock():
        result = demo_load(workers=True)
        for conn in connections.all():
            conn.close()
        server = LiveServerThread("localhost", StaticFilesHandler, connections_override={}, port=0)
        server.daemon = True
        server.start()
        server.is_ready.wait()
        if server.error:
            raise server.error
        try:
            yield {"url": f"http://localhost:{server.port}", **result}
        finally:
            server.terminate()
            call_command("flush", interactive=False, verbosity=0)
            db_settings["CONN_MAX_AGE"] = max_age


def _login(page, url, username):
    page.goto(f"{url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/**")


def _promotion_model():
    from apps.readiness.assess import promotion_request_model

    return promotion_request_model()


@pytest.mark.django_db
def test_demo_state_after_loading_with_real_workers(demo, browser_name):  # browser_name: keeps pytest from
    # regrouping this module's tests around the browser parameter (which would load the demo twice)
    from apps.deployments.models import Deployment, PredictionLog
    from apps.monitoring.models import Alert, MonitoringWindow
    from apps.projects.models import Job, Project
    from apps.readiness.assess import assessment_compute

    stages = {p.slug: assessment_compute(project=p).stage for p in Project.objects.all()}
    assert stages == {"pricing": "prototype", "support": "registered", "fraud": "shadow", "churn": "monitored"}
    assert demo["seconds"] < 300
    churn = Project.objects.get(slug="churn")
    dep = Deployment.objects.get(slug="churn-api")
    assert dep.is_live and PredictionLog.objects.filter(deployment=dep).count() >= 1000
    drifted = MonitoringWindow.objects.filter(deployment=dep, dataset_drifted=True)
    assert drifted.exists() and MonitoringWindow.objects.filter(deployment=dep, dataset_drifted=False).exists()
    assert Alert.objects.filter(deployment=dep, status="open", rule__name="Input drift").exists()
    # the registry validations and the training-set builds were run by the worker, not in-process
    assert Job.objects.filter(kind="registry.validate", status="succeeded").count() >= 3
    assert not Job.objects.exclude(status__in=["succeeded", "failed"]).filter(project=churn).exists()
    a = assessment_compute(project=churn)
    assert a.item("monitoring.open_alerts").status == "fail"
    assert a.item("features.skew").source == "auto"  # measured by monitoring's skew check on real traffic
    model = _promotion_model()
    if model is not None:
        assert model.objects.filter(deployment=dep, status="open").exists(), "a promotion request must wait"


def test_manager_reads_portfolio_and_readiness(demo, page, shot):
    url = demo["url"]
    _login(page, url, "max")
    page.get_by_role("link", name="Portfolio").click()
    table = page.locator("#portfolio-table")
    expect(table.locator("tr[data-project=churn] .badge[class*=stage-]")).to_have_text("monitored")
    expect(table.locator("tr[data-project=pricing] .badge[class*=stage-]")).to_have_text("prototype")
    expect(page.locator("#fig-in-production")).to_have_text("25 %")
    expect(page.locator("#portfolio-body .plotly-chart .main-svg").first).to_be_visible(timeout=15_000)
    page.locator("#portfolio-table th a", has_text="Readiness").click()  # htmx sort
    expect(page).to_have_url(re.compile(r"sort=score"))
    page.select_option("#id_stage", "prototype")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("Price elasticity")
    page.select_option("#id_stage", "")
    expect(table.locator("tbody tr")).to_have_count(4)
    shot(page, "readiness-portfolio")
    with page.expect_download() as dl:
        page.click("#portfolio-csv")
    assert dl.value.suggested_filename.startswith("portfolio-")

    table.get_by_role("link", name="Customer churn").click()
    expect(page.locator("#readiness-stage")).to_have_text("Monitored")
    expect(page.locator("#item-monitoringopen_alerts .badge")).to_have_text("fail")
    # every score says what it means; the page has a table of contents and collapsible sections
    expect(page.locator(".score-meaning").first).to_contain_text("100 when every item passes")
    expect(page.locator("#mlts-meaning")).to_contain_text("Means:")
    toc = page.get_by_role("navigation", name="On this page")
    expect(page.locator("#section-model")).not_to_have_attribute("open", "")
    toc.locator("a[href='#section-model']").click()  # the link opens the collapsed ML Test Score group
    expect(page.locator("#section-model")).to_have_attribute("open", "")
    row = page.locator("#item-mltsmodel6")
    row.locator("summary").click()
    row.locator("select").select_option("manual")
    row.locator("input[name=note]").fill("Per-country AUC reviewed each quarter")
    row.get_by_role("button", name="Save").click()
    expect(page.locator("#item-mltsmodel6 .badge")).to_have_text("warn")
    expect(page.locator("#item-mltsmodel6")).to_contain_text("Per-country AUC")
    page.fill("#snapshots input[name=note]", "Tour check")
    page.get_by_role("button", name="Save snapshot").click()
    expect(page.locator("#snapshots")).to_contain_text("Tour check")
    shot(page, "readiness-churn")


def test_data_scientist_uploads_a_model(demo, page, shot, tmp_path):
    import skops.io as sio
    from sklearn.ensemble import HistGradientBoostingClassifier

    from apps.features.models import TrainingSet
    from apps.readiness.demo import _training_frame

    ts = TrainingSet.objects.get(project__slug="churn", name="churn-2024-q4")
    frame = _training_frame(ts).dropna()
    names = ["sessions_7d", "support_tickets_30d", "tenure_months", "monthly_spend"]
    est = HistGradientBoostingClassifier(max_iter=30, random_state=1).fit(frame[names], frame["churned"])
    (tmp_path / "churn.skops").write_bytes(sio.dumps(est))
    buf = io.StringIO()
    frame[names + ["churned"]].tail(200).to_csv(buf, index=False)
    (tmp_path / "holdout.csv").write_text(buf.getvalue())

    url = demo["url"]
    _login(page, url, "dana")
    page.goto(f"{url}/tour/")
    expect(page.locator("#tour-data-scientist")).to_be_visible()
    page.locator("#tour-data-scientist").get_by_role("link", name="Upload a new version").click()
    page.set_input_files("#id_artifact", str(tmp_path / "churn.skops"))
    page.set_input_files("#id_holdout", str(tmp_path / "holdout.csv"))
    page.fill("#id_holdout_target", "churned")
    page.fill("#id_code_ref", "git:churn-model@tour")
    page.get_by_role("button", name="Upload and validate").click()
    page.wait_for_url(re.compile(r"/models/churn-model/v\d+/$"))
    expect(page.locator("#version-badge")).to_have_text("Ready", timeout=180_000)
    shot(page, "readiness-data-scientist-upload")


def test_analyst_opens_the_drift_dashboard(demo, page, shot):
    url = demo["url"]
    _login(page, url, "ana")
    page.goto(f"{url}/projects/churn/monitoring/")
    page.get_by_role("link", name="Churn score").first.click()
    expect(page).to_have_url(re.compile(r"/monitoring/churn-api/"))
    expect(page.locator(".plotly-chart .main-svg").first).to_be_visible(timeout=20_000)
    expect(page.locator("body")).to_contain_text("Input drift")
    shot(page, "readiness-analyst-drift")


def test_reviewer_approves_the_waiting_promotion(demo, page, shot):
    model = _promotion_model()
    if model is None:
        pytest.skip("promotion requests are not part of this build")
    req = model.objects.filter(deployment__slug="churn-api", status="open").first()
    assert req is not None, "the demo must leave a promotion request waiting"
    url = demo["url"]
    _login(page, url, "rita")
    page.goto(f"{url}/promotions/inbox")
    expect(page.locator("#promotion-requests")).to_contain_text("churn-api")
    page.locator("#promotion-requests tbody tr", has_text="churn-api").locator("a").first.click()
    page.wait_for_load_state("load")
    expect(page.locator("#review-form")).to_be_visible()
    shot(page, "readiness-reviewer-request")
    page.get_by_label("Approve").check()
    page.fill("#id_comment", "Retrained on fresh labels after the outage; shadow evidence checked.")
    if page.locator("#review-form .flash-error").count():  # a gate fails: approving needs a recorded reason
        page.fill("#id_override_reason", "Demo: the drift episode makes the old production model the worse one.")
    page.get_by_role("button", name="Submit review").click()
    expect(page.locator("#review-panel")).to_contain_text("Approved and promoted", timeout=30_000)
    shot(page, "readiness-reviewer-approved")
    req.refresh_from_db()
    assert req.status == "promoted"


@pytest.mark.django_db
def test_loading_the_demo_again_changes_nothing(demo, browser_name):
    from apps.deployments.models import PredictionLog
    from apps.readiness.demo import demo_load
    from apps.registry.models import ModelVersion

    before = (ModelVersion.objects.count(), PredictionLog.objects.count())
    demo_load(workers=True)
    assert (ModelVersion.objects.count(), PredictionLog.objects.count()) == before
