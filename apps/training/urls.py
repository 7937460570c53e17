"""Pages of training jobs and retraining policies (namespace ``training``; paths unchanged)."""

from django.urls import path

from . import views

app_name = "training"

urlpatterns = [
    path("projects/<slug:project>/models/<slug:model>/training/", views.training_list, name="training-list"),
    path("projects/<slug:project>/models/<slug:model>/training/new/", views.training_create, name="training-create"),
    path("projects/<slug:project>/models/<slug:model>/training/<int:pk>/", views.training_detail,
         name="training-detail"),
    path("projects/<slug:project>/models/<slug:model>/training/<int:pk>/cancel/", views.training_cancel,
         name="training-cancel"),
    path("projects/<slug:project>/retraining/", views.retraining_list, name="retraining-list"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/retraining/", views.retraining_policy,
         name="retraining-policy"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/retraining/save/", views.retraining_policy_save,
         name="retraining-save"),
    path("projects/<slug:project>/monitoring/<slug:deployment>/retraining/retrain/", views.retraining_retrain_now,
         name="retraining-retrain"),
]
