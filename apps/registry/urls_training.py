"""Training job pages (added to the ``registry`` namespace by apps/registry/urls.py)."""

from django.urls import path

from . import views_training as views

urlpatterns = [
    path("projects/<slug:project>/models/<slug:model>/training/", views.training_list, name="training-list"),
    path("projects/<slug:project>/models/<slug:model>/training/new/", views.training_create, name="training-create"),
    path("projects/<slug:project>/models/<slug:model>/training/<int:pk>/", views.training_detail,
         name="training-detail"),
    path("projects/<slug:project>/models/<slug:model>/training/<int:pk>/cancel/", views.training_cancel,
         name="training-cancel"),
]
