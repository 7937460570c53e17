"""Fail closed: every URL route and every API operation carries an explicit permission decision."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from apps.projects.access import PERMISSION_ATTR
from apps.projects.permissions import ACTIONS
from portal.api import api

KNOWN_DECISIONS = set(ACTIONS) | {"authenticated", "public"}


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p.callback


def _decision(callback):
    for obj in (callback, getattr(callback, "view_class", None), getattr(callback, "__wrapped__", None)):
        if obj is not None and hasattr(obj, PERMISSION_ATTR):
            return getattr(obj, PERMISSION_ATTR)
    return None


def test_every_page_route_has_a_permission_decision():
    missing = []
    for route, callback in _walk(get_resolver().url_patterns):
        if route.startswith("admin/"):  # Django admin: staff-only by its own site check
            continue
        if route.startswith("api/v1/"):  # ninja: checked per operation below
            continue
        if route.startswith("static/") or route.startswith("media/"):
            continue
        decision = _decision(callback)
        if decision not in KNOWN_DECISIONS:
            missing.append(f"{route} -> {getattr(callback, '__module__', '?')}.{getattr(callback, '__name__', callback)}")
    assert not missing, "Routes without a permission decision:\n" + "\n".join(missing)


def _operations():
    """The operations as mounted (ninja binds a clone of each router's operations to the API)."""
    for bound in api._get_bound_routers():
        for path, path_view in bound.path_operations.items():
            for op in path_view.operations:
                yield (bound.prefix.rstrip("/") + "/" + path.lstrip("/")).replace("//", "/"), op


def test_every_api_operation_requires_auth_and_declares_a_permission():
    missing, public = [], []
    for path, op in _operations():
        decision = getattr(op.view_func, PERMISSION_ATTR, None)
        if decision not in KNOWN_DECISIONS:
            missing.append(f"{op.methods} {path} ({op.view_func.__module__}.{op.view_func.__name__})")
        if decision != "public" and not op.auth_callbacks:
            public.append(f"{op.methods} {path}")
    assert not missing, "API operations without a permission decision:\n" + "\n".join(missing)
    assert not public, "API operations without authentication that are not marked public:\n" + "\n".join(public)


@pytest.mark.django_db
def test_unauthenticated_api_calls_get_401_json(client):
    for path, op in _operations():
        if getattr(op.view_func, PERMISSION_ATTR, None) == "public":
            continue
        url = "/api/v1/" + path.lstrip("/").replace("{", "").replace("}", "")
        for method in op.methods:
            resp = client.generic(method, url, "{}", content_type="application/json")
            assert resp.status_code in (401, 404, 405), (method, url, resp.status_code)
            if resp.status_code == 401:
                assert "detail" in resp.json()
