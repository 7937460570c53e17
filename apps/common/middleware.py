from django.contrib.auth.middleware import LoginRequiredMiddleware as _LoginRequired
from django.http import HttpResponse
from django.shortcuts import render

from .errors import ApplicationError, NotFound


class DomainErrorMiddleware:
    """Maps domain errors raised by page views to pages with the right status (the API maps its own)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, ApplicationError) or request.path.startswith("/api/"):
            return None
        status = 404 if isinstance(exception, NotFound) else exception.status_code
        if getattr(request, "htmx", False):
            return HttpResponse(
                f'<div class="flash flash-error" role="alert">{_escape(exception.message)}</div>', status=status
            )
        template = "404.html" if status == 404 else "error.html"
        return render(request, template, {"message": exception.message, "status": status}, status=status)


def _escape(text: str) -> str:
    from django.utils.html import escape

    return escape(text)


class PageLoginRequiredMiddleware(_LoginRequired):
    """Django's fail-closed login requirement for pages. The JSON API (``/api/v1/``) is excluded
    because django-ninja authenticates every operation itself (token or session) and answers 401 JSON."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith("/api/v1/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
