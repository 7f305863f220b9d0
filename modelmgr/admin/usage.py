"""Usage counters per minute and slot: read-only."""

from __future__ import annotations

from django.contrib import admin

from modelmgr.models import UsageBucket


@admin.register(UsageBucket)
class UsageBucketAdmin(admin.ModelAdmin):
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
    readonly_fields = [f.name for f in UsageBucket._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
