from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import RedirectView

from apps.common.views import api_not_found
from apps.deployments.views import healthz_view, metrics_view, predict_view
from apps.projects.access import public_view

from .api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", public_view(auth_views.LoginView.as_view()), name="login"),
    path("logout/", public_view(auth_views.LogoutView.as_view()), name="logout"),
    # deployments: the prediction hot path is a plain view ahead of ninja (and, under gunicorn, answered
    # even earlier by apps.deployments.serving.ServingDispatcher in portal/wsgi.py); documented in OpenAPI.
    path("api/v1/deployments/<slug:slug>/predict", predict_view, name="deployment-predict"),
    path("metrics", metrics_view, name="metrics"),
    # readiness (a probe prediction through the serving path); ahead of projects' plain "ok" page
    path("healthz", healthz_view, name="healthz-serving"),
    path("api/v1/", api.urls),
    path("api/docs", public_view(RedirectView.as_view(url="/api/v1/docs")), name="api-docs"),
    path("api/openapi.json", public_view(RedirectView.as_view(url="/api/v1/openapi.json")), name="api-openapi"),
    re_path(r"^api/", csrf_exempt(public_view(api_not_found))),
    path("", include("apps.projects.urls")),
    path("", include("apps.features.urls")),
    path("", include("apps.registry.urls")),
    path("", include("apps.deployments.urls")),
    path("", include("apps.monitoring.urls")),
    path("", include("apps.releases.urls")),
    path("", include("apps.training.urls")),
    path("", include("apps.readiness.urls")),
]

handler404 = "apps.common.views.page_not_found"
handler403 = "apps.common.views.permission_denied"
