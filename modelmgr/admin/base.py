"""Shared admin bases: audited edits, deletes through registry services, and the
helpers every admin action uses (actor label, one message per outcome)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.forms.models import model_to_dict

from modelmgr.audit import audit_record
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import ArtifactFile, Slot


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


# --- action helpers -----------------------------------------------------------------
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


def _apply_each(modeladmin, request, items, act, *, ok: str, refused: str, name=None) -> None:
    """Run ``act(item)`` (a service call that returns the line to report) for each item;
    a refusal (ModelmgrError) is reported per item, after ``name(item)`` when given, and
    does not stop the others."""
    done, failed = [], []
    for item in items:
        try:
            done.append(act(item))
        except ModelmgrError as exc:
            failed.append(f"{name(item)}: {exc.detail}" if name else exc.detail)
    _report(modeladmin, request, done, failed, ok=ok, refused=refused)


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows nobody adds, edits or deletes through the admin: they are only looked at."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
