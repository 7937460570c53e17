from django.urls import path

from . import views

app_name = "deployments"

urlpatterns = [
    path("projects/<slug:project>/deployments/", views.deployment_list, name="deployment-list"),
]
