from django.contrib import admin
from django.urls import include, path

from apps.dbops.views import metrics

urlpatterns = [
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("health/", include("apps.dbops.urls")),
]
