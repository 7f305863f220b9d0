"""Imports from URLs (DownloadJob): read-only progress; cancel and retry actions."""

from __future__ import annotations

from django.contrib import admin

from modelmgr.admin.base import _label, _report
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import DownloadJob


@admin.register(DownloadJob)
class DownloadJobAdmin(admin.ModelAdmin):
    """Imports from URLs; progress fields are the runner's, so they are read-only here.
    Jobs are created from the Imports page or the API (the URL is checked there)."""

    list_display = [
        "id",
        "model_name",
        "version",
        "state",
        "bytes_done",
        "bytes_total",
        "owner",
        "created_at",
        "result_version",
    ]
    list_filter = ["state", "task"]
    search_fields = ["model_name", "url", "owner__username", "sha256"]
    readonly_fields = [f.name for f in DownloadJob._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.action(description="Cancel (queued or running imports)")
def cancel_imports(modeladmin, request, queryset):
    from modelmgr.imports.services import import_cancel

    done, failed = [], []
    for job in queryset:
        try:
            import_cancel(job=job, actor=request.user, actor_label=_label(request))
            done.append(f"import {job.pk}")
        except ModelmgrError as exc:
            failed.append(exc.detail)
    _report(modeladmin, request, done, failed, ok="Cancelled", refused="Not cancelled")


@admin.action(description="Retry (failed or cancelled imports; resumes partial files)")
def retry_imports(modeladmin, request, queryset):
    from modelmgr.imports.services import import_retry

    done, failed = [], []
    for job in queryset:
        try:
            import_retry(job=job, actor=request.user, actor_label=_label(request))
            done.append(f"import {job.pk}")
        except ModelmgrError as exc:
            failed.append(exc.detail)
    _report(modeladmin, request, done, failed, ok="Queued again", refused="Not retried")


DownloadJobAdmin.actions = [cancel_imports, retry_imports]
