from django.urls import path

from . import views

app_name = "deployments"

_d = "projects/<slug:project>/deployments/<slug:deployment>/"

urlpatterns = [
    path("projects/<slug:project>/deployments/", views.deployment_list, name="deployment-list"),
    path("projects/<slug:project>/deployments/new", views.deployment_create_view, name="deployment-create"),
    path(_d, views.deployment_detail, name="deployment-detail"),
    path(_d + "predictions", views.deployment_predictions, name="deployment-predictions"),
    path(_d + "charts", views.deployment_charts_view, name="deployment-charts"),
    path(_d + "pause", views.deployment_pause_view, name="deployment-pause"),
    path(_d + "resume", views.deployment_resume_view, name="deployment-resume"),
    path(_d + "version", views.deployment_version_view, name="deployment-version"),
    path(_d + "owner", views.deployment_owner_view, name="deployment-owner"),
    path(_d + "keys", views.api_key_create_view, name="key-create"),
    path(_d + "keys/<int:key_id>/revoke", views.api_key_revoke_view, name="key-revoke"),
]
