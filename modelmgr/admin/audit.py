"""Audit trail (read-only) and API tokens (listed and revoked, audited)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.html import format_html

from modelmgr.admin.base import AuditedAdmin, ViewOnlyAdmin
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import ApiToken, AuditEvent
from modelmgr.registry.tokens import clean_token_slots


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


class ApiTokenForm(forms.ModelForm):
    slots = forms.CharField(
        required=False,
        help_text="Comma-separated slot names this token may predict on; empty = every slot.",
    )

    class Meta:
        model = ApiToken
        fields = ["slots", "revoked"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["slots"] = ", ".join(self.instance.slots or [])

    def clean_slots(self) -> list[str]:
        try:
            return clean_token_slots(self.cleaned_data.get("slots") or "")
        except ModelmgrError as exc:
            raise forms.ValidationError(exc.detail) from None


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    """Tokens are created with ``manage.py create_token`` (the raw token is shown once
    there); the admin lists them, limits one to some slots and can revoke one (audited)."""

    audit_target_type = "token"
    form = ApiTokenForm
    list_display = [
        "name",
        "user",
        "scopes",
        "slots_display",
        "revoked",
        "created_at",
        "last_used_at",
    ]
    list_filter = ["revoked"]
    search_fields = ["name", "user__username"]
    readonly_fields = ["user", "name", "scopes", "token_hash", "created_at", "last_used_at"]

    def has_add_permission(self, request) -> bool:
        return False  # an admin-made row would have no usable token

    @admin.display(description="slots")
    def slots_display(self, obj: ApiToken) -> str:
        return ", ".join(obj.slots) if obj.slots else "every slot"
