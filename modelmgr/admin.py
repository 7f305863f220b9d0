"""Django admin: every registry table, searchable and filterable; audit is read-only."""

from __future__ import annotations

import logging

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils.html import format_html

from modelmgr.audit import audit_record
from modelmgr.deploy.contract import clean_contract, version_fits_slot
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import (
    ApiToken,
    ArtifactFile,
    AuditEvent,
    DownloadJob,
    ModelVersion,
    RegisteredModel,
    Slot,
    Tag,
    UsageBucket,
)
from modelmgr.registry.snapshots import VERSION_EDITABLE_FIELDS
from modelmgr.registry.validation import clean_version_fields

log = logging.getLogger(__name__)


def _jsonable(value):
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if hasattr(value, "pk"):
        return value.pk
    if isinstance(value, int | float | str | bool | dict) or value is None:
        return value
    return str(value)


class AuditedAdmin(admin.ModelAdmin):
    """Every edit and delete made in the admin lands in the audit trail, in the same
    transaction, with the changed fields before and after (action ``<model>.admin_*``)."""

    audit_target_type = ""

    def _audit(self, request, obj, action: str, before=None, after=None) -> None:
        audit_record(
            actor=request.user,
            actor_label=_label(request),
            action=f"{self.audit_target_type}.{action}",
            target_type=self.audit_target_type,
            target=str(obj),
            before=before,
            after=after,
        )

    def save_model(self, request, obj, form, change):
        fields = list(form.changed_data) if change else list(form.fields)
        before = {}
        if change and obj.pk:
            stored = type(obj).objects.get(pk=obj.pk)
            before = {k: _jsonable(v) for k, v in model_to_dict(stored, fields=fields).items()}
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            after = {k: _jsonable(v) for k, v in model_to_dict(obj, fields=fields).items()}
            if change:
                # A form may call a JSON field changed when only its text differs.
                changed = [k for k in after if before.get(k) != after[k]]
                if not changed:
                    return
                before = {k: before.get(k) for k in changed}
                after = {k: after[k] for k in changed}
            self._audit(
                request, obj, "admin_change" if change else "admin_add", before or None, after
            )

    def save_related(self, request, form, formsets, change):
        with transaction.atomic():
            super().save_related(request, form, formsets, change)

    def delete_model(self, request, obj):
        with transaction.atomic():
            self._audit(request, obj, "admin_delete", before={"pk": obj.pk, "str": str(obj)})
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                self._audit(request, obj, "admin_delete", before={"pk": obj.pk, "str": str(obj)})
            super().delete_queryset(request, queryset)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


class ServiceDeleteAdmin(admin.ModelAdmin):
    """Deletes go through a registry service (``delete_one``), as in the API and pages.

    The service refuses while a slot serves a version, writes the audit row in the
    delete's transaction and collects the blobs nothing references any more after
    commit. A refusal is an error message and deletes nothing; the admin's own log
    entry is written only for what was deleted.
    """

    def delete_one(self, request, obj) -> None:
        raise NotImplementedError

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Files go with their version (their own admin refuses deleting one by itself).
        # A slot serving a version is never deleted with it: it is listed as protected,
        # which refuses the delete; "no permission to delete slot" would mislead.
        others = {str(ArtifactFile._meta.verbose_name), str(Slot._meta.verbose_name)}
        perms_needed = {name for name in perms_needed if str(name) not in others}
        return deleted, counts, perms_needed, protected

    def log_deletions(self, request, queryset):
        return []  # logged by _delete_through_service once deleted

    def delete_model(self, request, obj):
        self._delete_through_service(request, [obj])

    def delete_queryset(self, request, queryset):
        self._delete_through_service(request, list(queryset))

    def _delete_through_service(self, request, objs) -> None:
        deleted, failed = [], []
        for obj in objs:
            shown = str(obj)
            try:
                self.delete_one(request, obj)
            except ModelmgrError as exc:
                failed.append(exc.detail)
                continue
            deleted.append((obj, shown))
        if deleted:
            super().log_deletions(request, [obj for obj, _ in deleted])
        if failed:
            shown = [name for _, name in deleted]
            _report(self, request, shown, failed, ok="Deleted", refused="Not deleted")
            request._modelmgr_delete_refused = True

    def message_user(self, request, message, level=messages.INFO, *args, **kwargs):
        # After a refusal, the admin's own "deleted successfully" would be untrue.
        if level == messages.SUCCESS and getattr(request, "_modelmgr_delete_refused", False):
            return
        super().message_user(request, message, level, *args, **kwargs)


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    fields = ["version", "status", "framework", "size_bytes", "production_ready", "created_at"]
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ServiceDeleteAdmin):
    """Adds, edits and deletes go through modelmgr.registry.services (checked, audited).

    Owner and name are fixed once created: versions are referenced as ``name@version``.
    """

    list_display = ["name", "owner", "task", "framework", "created_at"]
    list_filter = ["task", "framework", "owner", "tags"]
    search_fields = ["name", "description", "tags__name", "owner__username"]
    autocomplete_fields = ["tags"]
    inlines = [ModelVersionInline]

    def get_readonly_fields(self, request, obj=None):
        return ["owner", "name", "created_at", "updated_at"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        from modelmgr.registry.services import model_create, model_update

        data = form.cleaned_data
        fields = {
            "task": data["task"],
            "framework": data["framework"],
            "description": data["description"],
            "tags": [tag.name for tag in data["tags"]],
        }
        if not change:
            created = model_create(
                owner=data["owner"],
                name=data["name"],
                actor=request.user,
                actor_label=_label(request),
                **fields,
            )
            obj.pk = created.pk
        elif form.has_changed():
            model_update(model=obj, actor=request.user, actor_label=_label(request), **fields)

    def save_related(self, request, form, formsets, change):
        # No form.save_m2m(): the service has set the tags. The inline is read-only.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_one(self, request, obj) -> None:
        from modelmgr.registry.services import model_delete

        model_delete(model=obj, actor=request.user, actor_label=_label(request))


class ArtifactFileInline(admin.TabularInline):
    model = ArtifactFile
    fields = ["path", "size", "sha256", "content_type", "is_primary"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ModelVersionAdminForm(forms.ModelForm):
    """The checks of registry.validation, shown on the form instead of as a 500."""

    class Meta:
        model = ModelVersion
        fields = [*VERSION_EDITABLE_FIELDS, "trusted"]

    def clean(self):
        data = super().clean()
        try:
            clean_version_fields(
                {k: data[k] for k in self.changed_data if k in VERSION_EDITABLE_FIELDS}
            )
        except ModelmgrError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(ModelVersion)
class ModelVersionAdmin(ServiceDeleteAdmin):
    """Versions come from uploads, imports and import_model. The admin edits their
    metadata and the ``trusted`` flag through registry.services.version_update (checked
    and audited like the API's PATCH); status changes only by the actions (archive,
    validate, verify), which call the services; deletes go through version_delete."""

    form = ModelVersionAdminForm
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "model",
                    "version",
                    "status",
                    "error",
                    "framework",
                    "source_uri",
                    "created_by",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
        ("Metadata", {"fields": list(VERSION_EDITABLE_FIELDS)}),
        ("Safety", {"fields": ["unsafe", "trusted"]}),
        ("Stored files", {"fields": ["content_hash", "size_bytes", "signature", "inspection"]}),
    ]
    list_display = [
        "ref_display",
        "status",
        "framework",
        "size_bytes",
        "production_ready",
        "unsafe",
        "trusted",
        "created_at",
    ]
    list_filter = ["status", "framework", "production_ready", "unsafe", "trusted", "model__task"]
    search_fields = ["model__name", "version", "description", "source_uri"]
    readonly_fields = [
        "model",
        "version",
        "status",
        "error",
        "framework",
        "source_uri",
        "content_hash",
        "size_bytes",
        "signature",
        "inspection",
        "unsafe",
        "created_by",
        "created_at",
        "updated_at",
    ]
    inlines = [ArtifactFileInline]
    list_select_related = ["model"]

    def has_add_permission(self, request) -> bool:
        return False  # a version without stored files would be unusable

    def save_model(self, request, obj, form, change):
        from modelmgr.registry.services import version_update

        stored = ModelVersion.objects.get(pk=obj.pk)
        # A form may call a JSON field changed when only its text differs.
        changed = [k for k in form.changed_data if form.cleaned_data[k] != getattr(stored, k)]
        fields = {k: form.cleaned_data[k] for k in changed if k in VERSION_EDITABLE_FIELDS}
        trusted = form.cleaned_data["trusted"] if "trusted" in changed else None
        if fields or trusted is not None:
            version_update(
                version=obj,
                actor=request.user,
                fields=fields,
                trusted=trusted,
                actor_label=_label(request),
            )

    def delete_one(self, request, obj) -> None:
        from modelmgr.registry.services import version_delete

        version_delete(version=obj, actor=request.user, actor_label=_label(request))

    @admin.display(description="version", ordering="model__name")
    def ref_display(self, obj: ModelVersion) -> str:
        return obj.ref


@admin.register(ArtifactFile)
class ArtifactFileAdmin(admin.ModelAdmin):
    list_display = ["path", "version", "size", "sha256", "is_primary"]
    list_filter = ["is_primary", "content_type"]
    search_fields = ["path", "sha256", "version__model__name"]

    # Files come and go with their version: uploads add them, version deletes remove
    # them (and collect their bytes). Here they are only looked at.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class SlotAdminForm(forms.ModelForm):
    """The checks of modelmgr.deploy.slots, shown on the form instead of as a 500."""

    class Meta:
        model = Slot
        fields = ["name", "task", "description", "contract"]

    def clean(self):
        data = super().clean()
        try:
            data["contract"] = clean_contract(data.get("contract"))
        except ModelmgrError as exc:
            raise forms.ValidationError({"contract": str(exc)}) from None
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
        "updated_at",
    ]
    list_filter = ["task"]
    search_fields = ["name", "description"]
    serving_fields = ["active_version", "previous_version", "canary_version", "canary_share"]

    def get_readonly_fields(self, request, obj=None):
        # A rename would leave the worker routing the old name.
        return [*self.serving_fields, "name"] if obj is not None else self.serving_fields

    def save_model(self, request, obj, form, change):
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


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
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

    # Append-only: nobody adds, edits or deletes audit rows through the admin.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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


@admin.register(UsageBucket)
class UsageBucketAdmin(admin.ModelAdmin):
    list_display = ["minute", "slot_name", "version", "count", "errors", "min_ms", "max_ms"]
    list_filter = ["slot_name"]
    readonly_fields = [f.name for f in UsageBucket._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


# --- actions ----------------------------------------------------------------------
# Each action calls the same service as the API and the pages (which audits it) and
# reports the outcome per object as an admin message.


def _label(request) -> str:
    from modelmgr.audit import actor_label_for

    return f"{actor_label_for(request.user)} (admin)"


def _report(
    modeladmin,
    request,
    done: list[str],
    failed: list[str],
    *,
    ok: str = "Done",
    refused: str = "Failed",
) -> None:
    """One success and one error message; each starts with a word (the admin capitalizes
    the first letter, which would mangle a model name)."""
    if done:
        modeladmin.message_user(request, f"{ok}: " + "; ".join(done), messages.SUCCESS)
    if failed:
        modeladmin.message_user(request, f"{refused}: " + "; ".join(failed), messages.ERROR)


@admin.action(description="Activate in its slot (slots whose task matches)")
def activate_in_slot(modeladmin, request, queryset):
    from modelmgr.deploy.services import slots_switch

    assignments: dict[str, str] = {}
    refused: list[str] = []
    for version in queryset.select_related("model__owner"):
        slots = list(Slot.objects.filter(task=version.model.task).values_list("name", flat=True))
        if not slots:
            refused.append(f"{version.ref}: no slot serves task {version.model.task!r}")
        for slot in slots:
            if slot in assignments:
                refused.append(f"{version.ref}: slot {slot} already gets {assignments[slot]}")
                continue
            assignments[slot] = f"{version.model.owner.get_username()}/{version.ref}"
    if refused:
        _report(modeladmin, request, [], refused, refused="Nothing switched")
        return
    try:
        slots_switch(assignments=assignments, actor=request.user, actor_label=_label(request))
    except ModelmgrError as exc:
        _report(modeladmin, request, [], [exc.detail], refused="Switch refused, no slot changed")
        return
    switched = [f"{slot} → {ref}" for slot, ref in assignments.items()]
    _report(modeladmin, request, switched, [], ok="Switched")


@admin.action(description="Validate (load test in the worker)")
def validate_versions(modeladmin, request, queryset):
    from modelmgr.deploy.validate import version_validate

    done, failed = [], []
    for version in queryset.select_related("model__owner"):
        try:
            outcome = version_validate(
                version=version, actor=request.user, actor_label=_label(request)
            )
        except ModelmgrError as exc:
            failed.append(f"{version.ref}: {exc.detail}")
            continue
        (done if outcome["ok"] else failed).append(outcome["detail"])
    _report(modeladmin, request, done, failed, ok="Validated", refused="Validation failed")


@admin.action(description="Verify hashes")
def verify_hashes(modeladmin, request, queryset):
    from modelmgr.ingest.services import version_verify

    done, failed, unreadable = [], [], []
    for version in queryset.select_related("model__owner"):
        try:
            result = version_verify(
                version=version, actor=request.user, actor_label=_label(request)
            )
        except OSError as exc:
            log.warning("could not read the stored files of %s", version.ref, exc_info=True)
            unreadable.append(f"{version.ref}: could not read its stored files ({_why(exc)})")
            continue
        if result["ok"]:
            done.append(f"{version.ref} ({len(result['files'])} file(s))")
        else:
            bad = ", ".join(f["path"] for f in result["files"] if not f["ok"])
            failed.append(f"{version.ref} ({bad}), now in error")
    _report(modeladmin, request, done, failed, ok="Hashes intact", refused="Integrity check failed")
    _report(modeladmin, request, [], unreadable, refused="Not verified, nothing changed")


def _why(exc: OSError) -> str:
    """The reason without the server's path (``[Errno 13] Permission denied: '/...'``)."""
    return exc.strerror or type(exc).__name__


@admin.action(description="Archive")
def archive_versions(modeladmin, request, queryset):
    from modelmgr.registry.services import version_update

    done, failed = [], []
    for version in queryset.select_related("model__owner"):
        try:
            version_update(
                version=version, actor=request.user, status="archived", actor_label=_label(request)
            )
            done.append(version.ref)
        except ModelmgrError as exc:
            failed.append(f"{version.ref}: {exc.detail}")
    _report(modeladmin, request, done, failed, ok="Archived", refused="Not archived")


@admin.action(description="Roll back to the previous version")
def rollback_slots(modeladmin, request, queryset):
    from modelmgr.deploy.services import slot_rollback

    done, failed = [], []
    for slot in queryset:
        try:
            slot_rollback(slot_name=slot.name, actor=request.user, actor_label=_label(request))
            slot.refresh_from_db()
            active = slot.active_version.ref if slot.active_version else "nothing"
            done.append(f"{slot.name} → {active}")
        except ModelmgrError as exc:
            failed.append(f"{slot.name}: {exc.detail}")
    _report(modeladmin, request, done, failed, ok="Rolled back", refused="Not rolled back")


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


ModelVersionAdmin.actions = [activate_in_slot, validate_versions, verify_hashes, archive_versions]
SlotAdmin.actions = [rollback_slots]
DownloadJobAdmin.actions = [cancel_imports, retry_imports]
