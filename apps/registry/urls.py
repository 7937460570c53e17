from django.urls import path

from . import views

app_name = "registry"

urlpatterns = [
    path("projects/<slug:project>/models/", views.model_list, name="model-list"),
]
