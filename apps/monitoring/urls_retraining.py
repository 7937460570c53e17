"""Retraining policy pages (added to the ``monitoring`` namespace by apps/monitoring/urls.py)."""

from django.urls import path

from . import views_retraining as views

urlpatterns = [
    path("projects/<slug:project>/retraining/", views.retraining_list, name="retraining-list"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/retraining/", views.retraining_policy,
         name="retraining-policy"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/retraining/save/", views.retraining_policy_save,
         name="retraining-save"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/retraining/retrain/", views.retraining_retrain_now,
         name="retraining-retrain"),
]
