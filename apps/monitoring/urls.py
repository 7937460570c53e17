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
    path("projects/<slug:project>/monitoring/<slug:deployment>/configure/", views.configure, name="configure"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/configure/settings/", views.configure_settings,
         name="configure-settings"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/configure/overrides/", views.configure_override,
         name="configure-override"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/configure/rules/", views.configure_rule_create,
         name="configure-rule-create"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/configure/rules/<int:rule_id>/",
         views.configure_rule_update, name="configure-rule-update"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/configure/rules/<int:rule_id>/mute/",
         views.configure_rule_mute, name="configure-rule-mute"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/configure/rules/<int:rule_id>/test/",
         views.configure_rule_test, name="configure-rule-test"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/configure/rules/<int:rule_id>/test/<int:notification_id>/",
         views.configure_rule_test_status, name="configure-rule-test-status"),
]
