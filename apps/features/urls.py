from django.urls import path

from . import views

app_name = "features"

urlpatterns = [
    path("projects/<slug:project>/features/", views.catalog, name="catalog"),
]
