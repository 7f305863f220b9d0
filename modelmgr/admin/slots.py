"""Slot admin: create, change and delete through modelmgr.deploy.slots; roll back."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from modelmgr.admin.base import _apply_each, _label
from modelmgr.deploy.batching import batching_checked
from modelmgr.deploy.contract import clean_contract, version_fits_slot
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import Slot


class SlotAdminForm(forms.ModelForm):
    """The checks of modelmgr.deploy.slots, shown on the form instead of as a 500."""

    class Meta:
        model = Slot
        fields = [
            "name",
            "task",
            "description",
            "contract",
            "max_batch_size",
            "max_queue_delay_us",
            "preferred_batch_sizes",
        ]
        help_texts = {
            "max_batch_size": "dynamic batching: the most requests' rows run together "
            "(0 = off); only for a model with a dynamic first dimension",
            "max_queue_delay_us": "the longest a request waits for others to join its batch",
            "preferred_batch_sizes": "a JSON list of sizes run as soon as reached, e.g. [4, 8]",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("max_batch_size", "max_queue_delay_us", "preferred_batch_sizes"):
            self.fields[name].required = False  # left out: stays as it is

    def clean(self):
        data = super().clean()
        try:
            data["contract"] = clean_contract(data.get("contract"))
        except ModelmgrError as exc:
            raise forms.ValidationError({"contract": str(exc)}) from None
        try:
            batching = batching_checked(
                self.instance,
                max_batch_size=data.get("max_batch_size"),
                max_queue_delay_us=data.get("max_queue_delay_us"),
                preferred_batch_sizes=data.get("preferred_batch_sizes"),
            )
        except ModelmgrError as exc:
            raise forms.ValidationError(str(exc)) from None
        data.update(batching)
        if self.instance.pk:
            candidate = Slot(
                name=self.instance.name, task=data.get("task"), contract=data["contract"]
            )
            for version in (self.instance.active_version, self.instance.canary_version):
                problems = version and version_fits_slot(version, candidate)
                if problems:
                    raise forms.ValidationError(
                        f"slot {self.instance.name} serves {version.ref}, which would not fit "
                        "the change: " + "; ".join(problems)
                    )
        return data


@admin.register(Slot)
class SlotAdmin(admin.ModelAdmin):
    """Create, change and delete go through modelmgr.deploy.slots (checked and audited).

    What a slot serves is read-only here: it changes only by a switch (the versions'
    *Activate* action, the settings page, the API), which loads and warms the model in
    the worker before the database says so.
    """

    form = SlotAdminForm
    list_display = [
        "name",
        "task",
        "active_version",
        "previous_version",
        "max_batch_size",
        "updated_at",
    ]
    list_filter = ["task"]
    search_fields = ["name", "description"]
    # Canary serving is not built yet (the columns wait for it): the admin shows no field
    # or column for a feature that does nothing.
    serving_fields = ["active_version", "previous_version"]

    def get_readonly_fields(self, request, obj=None):
        # A rename would leave the worker routing the old name.
        return [*self.serving_fields, "name"] if obj is not None else self.serving_fields

    def save_model(self, request, obj, form, change):
        from modelmgr.deploy.batching import slot_batching_set
        from modelmgr.deploy.slots import slot_create, slot_update

        fields = {"task": obj.task, "description": obj.description, "contract": obj.contract}
        if change:
            slot_update(
                slot_name=obj.name, actor=request.user, actor_label=_label(request), **fields
            )
        else:
            created = slot_create(
                name=obj.name, actor=request.user, actor_label=_label(request), **fields
            )
            obj.pk = created.pk
        slot_batching_set(
            slot_name=obj.name,
            actor=request.user,
            actor_label=_label(request),
            max_batch_size=obj.max_batch_size,
            max_queue_delay_us=obj.max_queue_delay_us,
            preferred_batch_sizes=obj.preferred_batch_sizes,
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        serving = obj is not None and (obj.active_version_id or obj.canary_version_id)
        return not serving and super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        from modelmgr.deploy.slots import slot_delete

        slot_delete(slot_name=obj.name, actor=request.user, actor_label=_label(request))

    def delete_queryset(self, request, queryset):
        from modelmgr.deploy.slots import slot_delete

        for slot in queryset:
            slot_delete(slot_name=slot.name, actor=request.user, actor_label=_label(request))


def _qualified(version) -> str:
    return f"{version.model.owner.get_username()}/{version.ref}" if version else ""


@admin.action(description="Roll back to the previous version")
def rollback_slots(modeladmin, request, queryset):
    """First a page naming each slot's target version; on confirmation, each slot goes
    to exactly that version, expecting what the page showed it serve, or is refused
    (409, naming who changed it meanwhile): never to whatever is previous by then."""
    from django.template.response import TemplateResponse

    from modelmgr.deploy.services import slot_rollback

    slots = queryset.select_related(
        "active_version__model__owner", "previous_version__model__owner"
    )
    if request.POST.get("confirm") != "yes":
        rows = [
            {
                "slot": slot,
                "to": _qualified(slot.previous_version),
                "seen": _qualified(slot.active_version),
            }
            for slot in slots
        ]
        context = {
            **modeladmin.admin_site.each_context(request),
            "opts": modeladmin.model._meta,
            "title": "Roll back slots?",
            "rows": rows,
            "any_target": any(row["to"] for row in rows),
        }
        return TemplateResponse(request, "admin/modelmgr/slot/rollback_confirmation.html", context)

    def rollback(slot):
        slot_rollback(
            slot_name=slot.name,
            actor=request.user,
            actor_label=_label(request),
            to=request.POST.get(f"to-{slot.name}") or None,
            expected=request.POST.get(f"seen-{slot.name}", ""),
        )
        slot.refresh_from_db()
        return f"{slot.name} → {slot.active_version.ref if slot.active_version else 'nothing'}"

    _apply_each(
        modeladmin,
        request,
        slots,
        rollback,
        ok="Rolled back",
        refused="Not rolled back",
        name=lambda slot: slot.name,
    )


SlotAdmin.actions = [rollback_slots]
