"""Imports from URLs (DownloadJob): read-only progress; cancel and retry actions."""

from __future__ import annotations

from django.contrib import admin

from modelmgr.admin.base import _apply_each, _label
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

    def cancel(job):
        import_cancel(job=job, actor=request.user, actor_label=_label(request))
        return f"import {job.pk}"

    _apply_each(modeladmin, request, queryset, cancel, ok="Cancelled", refused="Not cancelled")


@admin.action(description="Retry (failed or cancelled imports; resumes partial files)")
def retry_imports(modeladmin, request, queryset):
    from modelmgr.imports.services import import_retry

    def retry(job):
        import_retry(job=job, actor=request.user, actor_label=_label(request))
        return f"import {job.pk}"

    _apply_each(modeladmin, request, queryset, retry, ok="Queued again", refused="Not retried")


DownloadJobAdmin.actions = [cancel_imports, retry_imports]
