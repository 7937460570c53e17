from django.urls import path

from . import views

app_name = "monitoring"

urlpatterns = [
    path("projects/<slug:project>/monitoring/", views.overview, name="overview"),
]
