"""Pages and API of the readiness app (assessment, answers, snapshots, portfolio, CSV)."""

import csv
import io

import pytest

pytestmark = pytest.mark.django_db


def test_readiness_tab_shows_live_assessment(project, users, logged_in_client):
    r = logged_in_client(users["manager"]).get(f"/projects/{project.slug}/readiness/")
    assert r.status_code == 200
    body = r.content.decode()
    assert 'id="readiness-stage"' in body and "Prototype" in body
    assert "Lead time from a version" in body and "ML Test Score" in body
    assert body.count('class="readiness-item') == 13 + 28


def test_readiness_tab_hidden_from_outsiders(project, users, logged_in_client):
    assert logged_in_client(users["outsider"]).get(f"/projects/{project.slug}/readiness/").status_code == 404


def test_manager_answers_an_item_with_htmx_and_it_scores(project, users, logged_in_client):
    c = logged_in_client(users["manager"])
    r = c.post(f"/projects/{project.slug}/readiness/answers/handoff.oncall/", {"answer": "yes", "note": "PagerDuty rota"},
               headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert 'id="item-handoffoncall"' in r.content.decode() and "badge-pass" in r.content.decode()
    assert "PagerDuty rota" in r.content.decode()


def test_bad_answer_is_a_422_fragment(project, users, logged_in_client):
    c = logged_in_client(users["manager"])
    r = c.post(f"/projects/{project.slug}/readiness/answers/handoff.oncall/", {"answer": "automated"},
               headers={"HX-Request": "true"})
    assert r.status_code == 422
    assert "errorlist" in r.content.decode()


def test_data_scientist_cannot_answer(project, users, logged_in_client):
    r = logged_in_client(users["data_scientist"]).post(
        f"/projects/{project.slug}/readiness/answers/handoff.oncall/", {"answer": "yes"})
    assert r.status_code == 403


def test_snapshot_saved_and_listed(project, users, logged_in_client):
    c = logged_in_client(users["manager"])
    r = c.post(f"/projects/{project.slug}/readiness/snapshots/", {"note": "Q4 review"}, headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert "Q4 review" in r.content.decode() and "fig-readiness-history" in r.content.decode()


def test_portfolio_lists_visible_projects_sorted_and_filtered(project, users, logged_in_client, make_user):
    from apps.projects.services import project_create

    other = project_create(actor=users["manager"], name="Zeta risk", slug="zeta")
    project_create(actor=make_user("stranger"), name="Hidden", slug="hidden")
    c = logged_in_client(users["manager"])
    body = c.get("/portfolio/?sort=name&dir=desc").content.decode()
    assert body.index("Zeta risk") < body.index("Fraud detection")
    assert "Hidden" not in body
    r = c.get("/portfolio/?stage=production", headers={"HX-Request": "true", "HX-Target": "portfolio-body"})
    assert r.status_code == 200 and "No project matches" in r.content.decode()
    assert other.slug in c.get("/portfolio/?q=zeta").content.decode()


def test_portfolio_csv_neutralises_formulas(project, users, logged_in_client):
    from apps.projects.services import project_create

    project_create(actor=users["manager"], name="=HYPERLINK(\"http://x\")", slug="evil")
    r = logged_in_client(users["manager"]).get("/portfolio.csv")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode())))
    assert rows[0][:3] == ["project", "slug", "stage"]
    names = [row[0] for row in rows[1:]]
    assert "'=HYPERLINK(\"http://x\")" in names and "Fraud detection" in names


def test_api_assessment_answer_snapshot_portfolio(project, users, api_client):
    c = api_client(users["manager"])
    r = c.get(f"/api/v1/projects/{project.slug}/readiness")
    assert r.status_code == 200
    data = r.json()
    assert data["stage"] == "prototype" and len(data["ml_test_score_items"]) == 28
    r = c.put(f"/api/v1/projects/{project.slug}/readiness/answers/mlts.data.2", {"answer": "manual", "note": "ablation"},
              content_type="application/json")
    assert r.status_code == 200 and r.json()["answer"] == "manual"
    r = c.put(f"/api/v1/projects/{project.slug}/readiness/answers/mlts.data.2", {"answer": "maybe"},
              content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "answer"
    r = c.put(f"/api/v1/projects/{project.slug}/readiness/answers/nope", {"answer": "yes"}, content_type="application/json")
    assert r.status_code == 422
    r = c.post(f"/api/v1/projects/{project.slug}/readiness/snapshots", {"note": "api"}, content_type="application/json")
    assert r.status_code == 201 and r.json()["stage"] == "prototype"
    assert len(c.get(f"/api/v1/projects/{project.slug}/readiness/snapshots").json()) == 1
    rows = c.get("/api/v1/portfolio").json()
    assert [r["project"] for r in rows] == ["fraud"]
    assert api_client(users["analyst"]).put(f"/api/v1/projects/{project.slug}/readiness/answers/mlts.data.2",
                                            {"answer": "no"}, content_type="application/json").status_code == 403


def test_daily_snapshot_once_per_day(project):
    from apps.readiness.models import ReadinessSnapshot
    from apps.readiness.services import readiness_snapshot_daily

    assert readiness_snapshot_daily()["snapshots"] == 1
    assert readiness_snapshot_daily()["snapshots"] == 0
    assert ReadinessSnapshot.objects.filter(project=project, kind="scheduled").count() == 1


def test_snapshot_api_is_idempotent_with_a_key(project, users, api_client):
    c = api_client(users["manager"])
    url = f"/api/v1/projects/{project.slug}/readiness/snapshots"
    first = c.post(url, {"note": "x"}, content_type="application/json", headers={"Idempotency-Key": "abc"})
    again = c.post(url, {"note": "x"}, content_type="application/json", headers={"Idempotency-Key": "abc"})
    other = c.post(url, {"note": "x"}, content_type="application/json")
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]
    assert c.get(url).json()[0]["id"] == other.json()["id"]


def test_api_requires_authentication(project):
    from django.test import Client

    r = Client().get(f"/api/v1/projects/{project.slug}/readiness")
    assert r.status_code == 401 and "detail" in r.json()


def test_tour_page_links_into_the_demo(users, logged_in_client):
    r = logged_in_client(users["manager"]).get("/tour/")
    assert r.status_code == 200
    body = r.content.decode()
    assert "tour-manager" in body and "tour-analyst" in body and "seed_demo" in body
