"""Audit trail (read-only) and API tokens (listed and revoked, audited)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from modelmgr.admin.base import AuditedAdmin, ViewOnlyAdmin
from modelmgr.models import ApiToken, AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ViewOnlyAdmin):
    list_display = [
        "created_at",
        "actor_label",
        "action",
        "target_type",
        "target",
        "outcome_badge",
        "duration_ms",
    ]
    list_filter = ["action", "target_type", "outcome", "actor"]
    search_fields = ["target", "actor_label", "action", "error"]
    date_hierarchy = "created_at"

    @admin.display(description="outcome", ordering="outcome")
    def outcome_badge(self, obj: AuditEvent):
        colour = "#1a7f37" if obj.outcome == AuditEvent.Outcome.OK else "#cf222e"
        return format_html('<b style="color:{}">{}</b>', colour, obj.outcome)


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    """Tokens are created with ``manage.py create_token`` (the raw token is shown once
    there); the admin lists them and can revoke one (audited)."""

    audit_target_type = "token"
    list_display = ["name", "user", "scopes", "revoked", "created_at", "last_used_at"]
    list_filter = ["revoked"]
    search_fields = ["name", "user__username"]
    readonly_fields = ["user", "name", "scopes", "token_hash", "created_at", "last_used_at"]

    def has_add_permission(self, request) -> bool:
        return False  # an admin-made row would have no usable token
