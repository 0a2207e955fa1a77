from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    # The site root is the operator's dashboard (the admin asks for a login first).
    path("", RedirectView.as_view(pattern_name="admin:dbops_dashboard_changelist"), name="home"),
    path("admin/", admin.site.urls),
    # dbops' health endpoints and /metrics; a site may mount them under any prefix.
    path("", include("dbops.urls")),
]
