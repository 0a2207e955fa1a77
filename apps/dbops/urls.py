from django.urls import path

from . import views

app_name = "dbops"
urlpatterns = [
    path("live", views.live, name="health_live"),
    path("ready", views.ReadinessView.as_view(checks=["health_check.checks.Database"]), name="health_ready"),
]
