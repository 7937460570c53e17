from django.urls import path

from . import views

app_name = "registry"

urlpatterns = [
    path("projects/<slug:project>/models/", views.model_list, name="model-list"),
    path("projects/<slug:project>/models/new/", views.model_create, name="model-create"),
    path("projects/<slug:project>/models/<slug:model>/", views.model_detail, name="model-detail"),
    path("projects/<slug:project>/models/<slug:model>/upload/", views.version_upload, name="version-upload"),
    path("projects/<slug:project>/models/<slug:model>/upload/contract-preview/", views.contract_preview,
         name="contract-preview"),
    path("projects/<slug:project>/models/<slug:model>/compare/", views.version_compare, name="version-compare"),
    path("projects/<slug:project>/models/<slug:model>/v<int:version>/", views.version_detail, name="version-detail"),
    path("projects/<slug:project>/models/<slug:model>/v<int:version>/status/", views.version_status,
         name="version-status"),
    path("projects/<slug:project>/models/<slug:model>/v<int:version>/download/", views.version_download,
         name="version-download"),
    path("projects/<slug:project>/models/<slug:model>/v<int:version>/archive/", views.version_archive,
         name="version-archive"),
]
