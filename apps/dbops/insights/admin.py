"""The admin's "Database insights" page: the findings, the running statements, cancel and terminate.

A shell over `service` and `activity`: viewing needs `dbops.view_database_insights`, cancelling
`dbops.cancel_query`, terminating `dbops.terminate_query`; each action is recorded in the admin log.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from dbops.admin_base import ReadOnlyAdmin
from dbops.insights.activity import running_backends, signal_backend
from dbops.insights.service import run_insights
from dbops.insights.shared import share
from dbops.models import DatabaseInsights

VIEW, CANCEL, TERMINATE = "dbops.view_database_insights", "dbops.cancel_query", "dbops.terminate_query"


@admin.register(DatabaseInsights)
class DatabaseInsightsAdmin(ReadOnlyAdmin):
    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff and request.user.has_perm(VIEW)

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("", view(self.changelist_view), name=f"{name}_changelist"),
            path("<int:pid>/cancel/", view(self.signal_view), {"terminate": False}, name=f"{name}_cancel"),
            path("<int:pid>/terminate/", view(self.signal_view), {"terminate": True}, name=f"{name}_terminate"),
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        report = run_insights()
        share(report)  # the dashboard, health and alerts read this newest run
        context = {
            **self.admin_site.each_context(request),
            "title": "Database insights",
            "report": report,
            "backends": running_backends(),
            "can_cancel": request.user.has_perm(CANCEL),
            "can_terminate": request.user.has_perm(TERMINATE),
        }
        return TemplateResponse(request, "admin/dbops/insights/insights.html", context)

    def signal_view(self, request, pid: int, terminate: bool):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not (self.has_view_permission(request) and request.user.has_perm(TERMINATE if terminate else CANCEL)):
            raise PermissionDenied
        verb = "terminated the session of" if terminate else "cancelled the statement of"
        backend = signal_backend(pid, terminate=terminate)
        if backend is None:
            messages.warning(request, f"backend {pid} is gone: nothing was signalled")
        else:
            LogEntry.objects.create(
                user_id=request.user.pk,
                content_type=ContentType.objects.get_for_model(DatabaseInsights, for_concrete_model=False),
                object_id=str(pid),
                object_repr=f"backend {pid} ({backend.user}, {backend.application or 'no application name'})"[:200],
                action_flag=CHANGE,
                change_message=f"{verb} backend {pid}: {' '.join(backend.query.split())[:300]}",
            )
            messages.success(request, f"{verb} backend {pid}")
        return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))
