from django.urls import path

from . import views

app_name = "monitoring"

urlpatterns = [
    path("projects/<slug:project>/monitoring/", views.overview, name="overview"),
    path("projects/<slug:project>/monitoring/alerts/", views.alert_list, name="alert-list"),
    path("projects/<slug:project>/monitoring/alerts/<int:alert_id>/acknowledge/", views.alert_acknowledge,
         name="alert-acknowledge"),
    path("projects/<slug:project>/monitoring/alerts/<int:alert_id>/snooze/", views.alert_snooze, name="alert-snooze"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/", views.dashboard, name="dashboard"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/features/<str:feature>/", views.feature_detail,
         name="feature-detail"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/checks/", views.drift_check_create,
         name="drift-check-create"),
]
