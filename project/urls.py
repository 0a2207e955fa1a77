from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # dbops' health endpoints and /metrics; a site may mount them under any prefix.
    path("", include("dbops.urls")),
]
