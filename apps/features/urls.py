from django.urls import path

from . import views

app_name = "features"

P = "projects/<slug:project>/features/"

urlpatterns = [
    path(P, views.catalog, name="catalog"),
    path(P + "entities/new/", views.entity_create, name="entity-create"),
    path(P + "sources/upload/", views.source_upload, name="source-upload"),
    path(P + "sources/<slug:name>/", views.source_detail, name="source-detail"),
    path(P + "views/new/", views.view_create, name="view-create"),
    path(P + "views/<slug:name>/", views.view_detail, name="view-detail"),
    path(P + "views/<slug:name>/edit/", views.view_edit, name="view-edit"),
    path(P + "views/<slug:name>/materialize/", views.view_materialize, name="view-materialize"),
    path(P + "sets/new/", views.feature_set_create, name="featureset-create"),
    path(P + "sets/<slug:name>/", views.feature_set_detail, name="featureset-detail"),
    path(P + "training-sets/new/", views.training_set_create, name="trainingset-create"),
    path(P + "training-sets/<slug:name>/", views.training_set_detail, name="trainingset-detail"),
    path(P + "training-sets/<slug:name>/download/", views.training_set_download, name="trainingset-download"),
]
