"""Permission decisions for pages and API operations.

Every page view is wrapped by exactly one of ``project_view(action)``, ``user_view`` or
``public_view``; every API operation by ``api_permission(action)`` (the handler then resolves its
project with ``project_get_for_user(..., action=action)``). ``tests/projects/test_routes.py`` walks
all routes and operations and fails when one carries no decision.
"""

from functools import wraps

from django.contrib.auth.decorators import login_not_required

from .selectors import project_get_for_user

PERMISSION_ATTR = "slipway_permission"


def _mark(func, decision: str):
    setattr(func, PERMISSION_ATTR, decision)
    return func


def project_view(action: str):
    """Page view of a project: resolves ``project`` (slug kwarg) for the user, 404/403 otherwise."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, project: str, *args, **kwargs):
            project_obj = project_get_for_user(user=request.user, slug=project, action=action)
            request.project = project_obj
            return view(request, project_obj, *args, **kwargs)

        return _mark(wrapper, action)

    return decorator


def user_view(view):
    """A page about the signed-in user's own things (their projects, their tokens)."""
    return _mark(view, "authenticated")


def public_view(view):
    """A page anyone may open (log in, health check)."""
    return _mark(login_not_required(view), "public")


def api_permission(action: str):
    """Label an API operation with the action its handler checks (``authenticated`` for own data)."""

    def decorator(func):
        return _mark(func, action)

    return decorator
