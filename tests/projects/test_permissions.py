"""The permission matrix: each role × each action on projects, members and tokens, via pages and API."""

import pytest

from apps.projects.models import Membership

pytestmark = pytest.mark.django_db

ROLES = ["owner", "data_scientist", "reviewer", "manager", "analyst", "outsider"]
ONLY_OWNER = {"owner"}
EVERY_MEMBER = {"owner", "data_scientist", "reviewer", "manager", "analyst"}


def expected(role, allowed):
    if role == "outsider":
        return 404  # a project you do not belong to does not exist for you
    return "ok" if role in allowed else 403


def ok(status):
    return 200 <= status < 400


def check(status, want):
    if want == "ok":
        assert ok(status), status
    else:
        assert status == want, status


# --- pages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_view_project_page(role, users, logged_in_client):
    check(logged_in_client(users[role]).get("/projects/fraud/").status_code, expected(role, EVERY_MEMBER))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", ["/projects/fraud/members/", "/projects/fraud/audit/", "/projects/fraud/readiness/",
                                  "/projects/fraud/features/", "/projects/fraud/models/",
                                  "/projects/fraud/deployments/", "/projects/fraud/monitoring/"])
def test_member_readable_pages(role, path, users, logged_in_client):
    check(logged_in_client(users[role]).get(path).status_code, expected(role, EVERY_MEMBER))


@pytest.mark.parametrize("role", ROLES)
def test_edit_project_page(role, users, project, logged_in_client):
    resp = logged_in_client(users[role]).post("/projects/fraud/settings/", {"name": f"Renamed by {role}", "description": ""})
    check(resp.status_code, expected(role, ONLY_OWNER))
    project.refresh_from_db()
    assert (project.name == f"Renamed by {role}") == (role == "owner")


@pytest.mark.parametrize("role", ROLES)
def test_archive_project_page(role, users, project, logged_in_client):
    resp = logged_in_client(users[role]).post("/projects/fraud/archive/", {"archived": "1"})
    check(resp.status_code, expected(role, ONLY_OWNER))
    project.refresh_from_db()
    assert project.is_archived == (role == "owner")


@pytest.mark.parametrize("role", ROLES)
def test_add_member_page(role, users, project, make_user, logged_in_client):
    newcomer = make_user("newcomer")
    resp = logged_in_client(users[role]).post("/projects/fraud/members/add/", {"username": "newcomer", "role": "analyst"},
                                              headers={"HX-Request": "true"})
    check(resp.status_code, expected(role, ONLY_OWNER))
    assert Membership.objects.filter(project=project, user=newcomer).exists() == (role == "owner")


@pytest.mark.parametrize("role", ROLES)
def test_change_role_page(role, users, project, logged_in_client):
    m = Membership.objects.get(project=project, user=users["analyst"])
    resp = logged_in_client(users[role]).post(f"/projects/fraud/members/{m.pk}/role/", {"role": "reviewer"},
                                              headers={"HX-Request": "true"})
    check(resp.status_code, expected(role, ONLY_OWNER))
    m.refresh_from_db()
    assert (m.role == "reviewer") == (role == "owner")


@pytest.mark.parametrize("role", ROLES)
def test_remove_member_page(role, users, project, logged_in_client):
    m = Membership.objects.get(project=project, user=users["reviewer"])
    resp = logged_in_client(users[role]).post(f"/projects/fraud/members/{m.pk}/remove/", headers={"HX-Request": "true"})
    check(resp.status_code, expected(role, ONLY_OWNER))
    assert Membership.objects.filter(pk=m.pk).exists() == (role != "owner")


@pytest.mark.parametrize("role", ROLES)
def test_tokens_are_personal_pages(role, users, logged_in_client):
    from apps.projects.services import api_token_create

    other_token, _ = api_token_create(user=users["owner"] if role != "owner" else users["analyst"], name="theirs")
    client = logged_in_client(users[role])
    assert client.get("/account/tokens/").status_code == 200
    assert client.post("/account/tokens/", {"name": "mine"}).status_code == 200
    assert client.post(f"/account/tokens/{other_token.pk}/revoke/").status_code == 404
    other_token.refresh_from_db()
    assert other_token.revoked_at is None


def test_anonymous_pages_redirect_to_login(client):
    for path in ["/", "/projects/fraud/", "/account/tokens/", "/projects/new/"]:
        resp = client.get(path)
        assert resp.status_code == 302 and resp.url.startswith("/login/"), path


def test_staff_can_read_but_not_manage_foreign_project(make_user, project, logged_in_client):
    staff = make_user("staffer", is_staff=True)
    client = logged_in_client(staff)
    assert client.get("/projects/fraud/").status_code == 200
    assert client.post("/projects/fraud/settings/", {"name": "x"}).status_code == 403


# --- API -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_api_get_project(role, users, api_client):
    check(api_client(users[role]).get("/api/v1/projects/fraud").status_code, expected(role, EVERY_MEMBER))


@pytest.mark.parametrize("role", ROLES)
def test_api_list_projects_is_filtered_in_query(role, users, api_client):
    slugs = [p["slug"] for p in api_client(users[role]).get("/api/v1/projects").json()]
    assert slugs == ([] if role == "outsider" else ["fraud"])


@pytest.mark.parametrize("role", ROLES)
def test_api_patch_project(role, users, project, api_client):
    resp = api_client(users[role]).patch("/api/v1/projects/fraud", {"name": "API rename"}, content_type="application/json")
    check(resp.status_code, expected(role, ONLY_OWNER))
    if resp.status_code >= 400:
        assert "detail" in resp.json()


@pytest.mark.parametrize("role", ROLES)
def test_api_members(role, users, project, make_user, api_client):
    make_user("newcomer")
    client = api_client(users[role])
    check(client.get("/api/v1/projects/fraud/members").status_code, expected(role, EVERY_MEMBER))
    resp = client.post("/api/v1/projects/fraud/members", {"username": "newcomer", "role": "analyst"},
                       content_type="application/json")
    check(resp.status_code, expected(role, ONLY_OWNER))
    resp = client.patch("/api/v1/projects/fraud/members/analyst", {"role": "reviewer"}, content_type="application/json")
    check(resp.status_code, expected(role, ONLY_OWNER))
    resp = client.delete("/api/v1/projects/fraud/members/reviewer")
    check(resp.status_code, expected(role, ONLY_OWNER))


@pytest.mark.parametrize("role", ROLES)
def test_api_audit(role, users, api_client):
    check(api_client(users[role]).get("/api/v1/projects/fraud/audit").status_code, expected(role, EVERY_MEMBER))


@pytest.mark.parametrize("role", ROLES)
def test_api_tokens_are_personal(role, users, api_client):
    from apps.projects.services import api_token_create

    other, _ = api_token_create(user=users["owner"] if role != "owner" else users["analyst"], name="theirs")
    client = api_client(users[role])
    assert client.post("/api/v1/tokens", {"name": "x"}, content_type="application/json").status_code == 201
    assert all(t["id"] != other.pk for t in client.get("/api/v1/tokens").json())
    assert client.delete(f"/api/v1/tokens/{other.pk}").status_code == 404
