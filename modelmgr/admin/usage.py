"""Usage counters per minute and slot, their all-time totals, and measured profiles:
read-only."""

from __future__ import annotations

from django.contrib import admin

from modelmgr.admin.base import ViewOnlyAdmin
from modelmgr.models import UsageBucket, UsageTotal, VersionProfile


@admin.register(UsageBucket)
class UsageBucketAdmin(ViewOnlyAdmin):
    """Looked at, never deleted: a version's all-time UsageTotal already counts each
    minute (deleting the version removes both)."""

    list_display = [
        "minute",
        "slot_name",
        "version",
        "count",
        "errors",
        "refused",
        "min_ms",
        "max_ms",
    ]
    list_filter = ["slot_name"]


@admin.register(UsageTotal)
class UsageTotalAdmin(ViewOnlyAdmin):
    """Kept by the worker's flush beside the minute rows, never typed."""

    list_display = ["version", "slot_name", "count", "errors", "refused", "last_used"]
    list_filter = ["slot_name"]
    search_fields = ["version__model__name", "version__version"]


@admin.register(VersionProfile)
class VersionProfileAdmin(ViewOnlyAdmin):
    """Profiles are measured by the "Profile" action on versions (or the API), never typed."""

    list_display = ["version", "device", "runtime", "load_ms", "memory_bytes", "created_at"]
    list_filter = ["device"]
    search_fields = ["version__model__name", "version__version"]
    readonly_fields = [f.name for f in VersionProfile._meta.fields]
