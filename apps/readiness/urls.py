from django.urls import path

from . import views

app_name = "readiness"

urlpatterns = [
    path("projects/<slug:project>/readiness/", views.assessment, name="assessment"),
    path("projects/<slug:project>/readiness/answers/<str:item_key>/", views.answer, name="answer"),
    path("projects/<slug:project>/readiness/snapshots/", views.snapshot_create, name="snapshot-create"),
    path("portfolio/", views.portfolio, name="portfolio"),
    path("portfolio.csv", views.portfolio_csv, name="portfolio-csv"),
    path("tour/", views.tour, name="tour"),
]
