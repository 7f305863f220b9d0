"""Slot admin: create, change and delete through modelmgr.deploy.slots; roll back."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from modelmgr.admin.base import _apply_each, _label
from modelmgr.deploy.batching import batching_checked
from modelmgr.deploy.contract import clean_contract, version_fits_slot
from modelmgr.deploy.gate import clean_quality_gate
from modelmgr.deploy.llm_limits import llm_limits_checked
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
            "llm_num_parallel",
            "llm_max_queue",
            "quality_gate",
            "production",
            "worker_group",
        ]
        help_texts = {
            "worker_group": "placement: only workers of this group (MODELMGR_WORKER_GROUP) "
            "load the slot; empty = every worker",
            "quality_gate": 'metric -> "<op> <number>", e.g. {"val_accuracy": ">= 0.9"}: a '
            "switch to a version that fails it is refused unless forced ({} = no gate)",
            "production": "accepts only production-ready versions unless a switch is forced",
            "max_batch_size": "dynamic batching: the most requests' rows run together "
            "(0 = off); only for a model with a dynamic first dimension",
            "max_queue_delay_us": "the longest a request waits for others to join its batch",
            "preferred_batch_sizes": "a JSON list of sizes run as soon as reached, e.g. [4, 8]",
            "llm_num_parallel": "language models: generations at once "
            "(0 = MODELMGR_LLM_NUM_PARALLEL)",
            "llm_max_queue": "language models: requests that may wait for a place, more get "
            "503 (empty = MODELMGR_LLM_MAX_QUEUE, 0 = none wait)",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("max_batch_size", "max_queue_delay_us", "preferred_batch_sizes"):
            self.fields[name].required = False  # left out: stays as it is
        self.fields["llm_num_parallel"].required = False  # empty: the default
        self.fields["quality_gate"].required = False  # empty: no gate

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
        try:
            limits = llm_limits_checked(
                self.instance,
                num_parallel=data.get("llm_num_parallel") or 0,
                max_queue=data.get("llm_max_queue"),
            )
        except ModelmgrError as exc:
            raise forms.ValidationError(str(exc)) from None
        try:
            data["quality_gate"] = clean_quality_gate(data.get("quality_gate"))
        except ModelmgrError as exc:
            raise forms.ValidationError({"quality_gate": str(exc)}) from None
        data["llm_num_parallel"] = limits["num_parallel"]
        data["llm_max_queue"] = limits["max_queue"]
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
        "canary_version",
        "canary_share",
        "shadow_version",
        "max_batch_size",
        "updated_at",
    ]
    list_filter = ["task"]
    search_fields = ["name", "description"]
    # Read-only: they change by a switch (canary and shadow: modelmgr.deploy.canary, set
    # from /settings or the API; promoted or aborted by this admin's actions too).
    serving_fields = [
        "active_version",
        "previous_version",
        "canary_version",
        "canary_share",
        "shadow_version",
    ]

    def get_readonly_fields(self, request, obj=None):
        # A rename would leave the worker routing the old name.
        return [*self.serving_fields, "name"] if obj is not None else self.serving_fields

    def save_model(self, request, obj, form, change):
        from modelmgr.deploy.batching import slot_batching_set
        from modelmgr.deploy.llm_limits import slot_llm_limits_set
        from modelmgr.deploy.slots import slot_create, slot_update

        fields = {"task": obj.task, "description": obj.description, "contract": obj.contract}
        if change:
            slot_update(
                slot_name=obj.name,
                actor=request.user,
                actor_label=_label(request),
                worker_group=obj.worker_group,
                **fields,
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
        slot_llm_limits_set(
            slot_name=obj.name,
            actor=request.user,
            actor_label=_label(request),
            num_parallel=obj.llm_num_parallel,
            max_queue=obj.llm_max_queue,
        )
        if {"quality_gate", "production"} & set(form.changed_data):
            from modelmgr.deploy.gate import slot_gate_set

            slot_gate_set(  # the stored row, so the audit's "before" is what it was
                slot=Slot.objects.get(name=obj.name),
                quality_gate=obj.quality_gate,
                production=obj.production,
                actor=request.user,
                actor_label=_label(request),
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


def _arms_action(action: str, *, ok: str, refused: str, description: str):
    """An admin action running modelmgr.deploy.canary's ``action`` on each chosen slot."""

    def run(modeladmin, request, queryset):
        from modelmgr.deploy.canary import arms_change

        def act(slot):
            result = arms_change(
                slot=slot.name, action=action, actor=request.user, actor_label=_label(request)
            )
            return f"{slot.name} serves {result['after']['active']}"

        # The service's refusals name the slot already.
        _apply_each(modeladmin, request, queryset, act, ok=ok, refused=refused)

    run.__name__ = action.replace(".", "_")
    return admin.action(description=description)(run)


promote_canaries = _arms_action(
    "slot.promote",
    ok="Promoted",
    refused="Not promoted",
    description="Promote the canary to the active version",
)
abort_arms = _arms_action(
    "slot.abort",
    ok="Canary and shadow removed",
    refused="Not changed",
    description="Abort the canary and the shadow",
)
SlotAdmin.actions = [rollback_slots, promote_canaries, abort_arms]
