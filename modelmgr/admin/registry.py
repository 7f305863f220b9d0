"""Registry admins: tags, registered models, model versions and their stored files."""

from __future__ import annotations

import copy

from django import forms
from django.contrib import admin

from modelmgr.admin.base import ServiceDeleteAdmin, ViewOnlyAdmin, _label
from modelmgr.admin.version_actions import (
    activate_in_slot,
    archive_versions,
    profile_versions,
    validate_versions,
    verify_hashes,
)
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import ArtifactFile, ModelVersion, RegisteredModel, Tag
from modelmgr.registry.pins import version_pin_refusal
from modelmgr.registry.snapshots import VERSION_EDITABLE_FIELDS
from modelmgr.registry.validation import clean_version_fields


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


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
        fields = [*VERSION_EDITABLE_FIELDS, "trusted", "pinned", "keep_alive_s"]

    def clean(self):
        data = super().clean()
        try:
            clean_version_fields(
                {k: data[k] for k in self.changed_data if k in VERSION_EDITABLE_FIELDS}
            )
        except ModelmgrError as exc:
            raise forms.ValidationError(str(exc)) from None
        if "pinned" in self.changed_data and data.get("pinned"):
            probe = copy.copy(self.instance)  # the form's values reach the instance later
            probe.trusted = data.get("trusted", probe.trusted)
            refusal = version_pin_refusal(probe)
            if refusal:
                self.add_error("pinned", refusal)
        return data


@admin.register(ModelVersion)
class ModelVersionAdmin(ServiceDeleteAdmin):
    """Versions come from uploads, imports and import_model. The admin edits their
    metadata, the ``trusted`` flag and the ``pinned`` flag (keep loaded in the worker)
    through registry.services.version_update (checked and audited like the API's PATCH);
    status changes only by the actions (archive, validate, verify), which call the
    services; deletes go through version_delete."""

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
        ("Metadata", {"fields": [*VERSION_EDITABLE_FIELDS, "parameter_count"]}),
        ("Safety", {"fields": ["unsafe", "trusted"]}),
        ("Worker", {"fields": ["pinned", "keep_alive_s"]}),
        ("Provided by", {"fields": ["provider", "provider_model"]}),
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
        "pinned",
        "created_at",
    ]
    list_filter = [
        "status",
        "framework",
        "production_ready",
        "unsafe",
        "trusted",
        "pinned",
        "model__task",
        "purpose",
        "provider",
    ]
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
        "parameter_count",
        "unsafe",
        "provider",
        "provider_model",
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
        if "keep_alive_s" in changed:  # edited in seconds; the service takes Ollama's name
            fields["keep_alive"] = form.cleaned_data["keep_alive_s"]
        trusted = form.cleaned_data["trusted"] if "trusted" in changed else None
        pinned = form.cleaned_data["pinned"] if "pinned" in changed else None
        if fields or trusted is not None or pinned is not None:
            version_update(
                version=obj,
                actor=request.user,
                fields=fields,
                trusted=trusted,
                pinned=pinned,
                actor_label=_label(request),
            )

    def delete_one(self, request, obj) -> None:
        from modelmgr.registry.services import version_delete

        version_delete(version=obj, actor=request.user, actor_label=_label(request))

    @admin.display(description="version", ordering="model__name")
    def ref_display(self, obj: ModelVersion) -> str:
        return obj.ref


@admin.register(ArtifactFile)
class ArtifactFileAdmin(ViewOnlyAdmin):
    list_display = ["path", "version", "size", "sha256", "is_primary"]
    list_filter = ["is_primary", "content_type"]
    search_fields = ["path", "sha256", "version__model__name"]


ModelVersionAdmin.actions = [
    activate_in_slot,
    validate_versions,
    profile_versions,
    verify_hashes,
    archive_versions,
]
