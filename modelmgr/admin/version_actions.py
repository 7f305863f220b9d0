"""Admin actions on model versions: activate in a slot, validate, profile, verify hashes,
archive.

Each calls the same service as the API and the pages (which audits it) and reports the
outcome per version as an admin message.
"""

from __future__ import annotations

import logging

from django.contrib import admin

from modelmgr.admin.base import _apply_each, _label, _report
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import Slot

log = logging.getLogger(__name__)


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


@admin.action(description="Profile (latency and throughput in the worker)")
def profile_versions(modeladmin, request, queryset):
    from modelmgr.deploy.profile import version_profile_run

    done, failed = [], []
    for version in queryset.select_related("model__owner"):
        try:
            profile = version_profile_run(
                version=version, actor=request.user, actor_label=_label(request)
            )
        except ModelmgrError as exc:
            failed.append(f"{version.ref}: {exc.detail}")
            continue
        first = profile.results[0] if profile.results else {}
        done.append(
            f"{version.ref} on {profile.device}: {first.get('p50_ms', 0):.3g} ms p50 at "
            f"batch {first.get('batch_size', 1)}"
        )
    _report(modeladmin, request, done, failed, ok="Profiled", refused="Profile refused")


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

    def archive(version):
        version_update(
            version=version, actor=request.user, status="archived", actor_label=_label(request)
        )
        return version.ref

    _apply_each(
        modeladmin,
        request,
        queryset.select_related("model__owner"),
        archive,
        ok="Archived",
        refused="Not archived",
        name=lambda version: version.ref,
    )
