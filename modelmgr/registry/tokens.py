"""API tokens for robots: created (shown once, stored hashed) and revoked by name."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from modelmgr.audit import audit_record
from modelmgr.exceptions import NotFound, VersionConflict
from modelmgr.models import ApiToken
from modelmgr.registry.prepared import PreparedQuery
from modelmgr.registry.validation import SLUG_RE, InvalidInput

SLOT_NAME_MAX = 64  # Slot.name's max_length


def clean_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    cleaned = sorted({s.strip().lower() for s in scopes if s.strip()})
    unknown = [s for s in cleaned if s not in ApiToken.Scope.values]
    if unknown or not cleaned:
        raise InvalidInput(
            f"scopes must be a non-empty subset of {', '.join(ApiToken.Scope.values)}; "
            f"got {', '.join(scopes) or 'none'}"
        )
    return cleaned


def clean_token_slots(slots) -> list[str]:
    """Slot names a token is limited to (empty = every slot), sorted and de-duplicated.

    Names need not exist yet: a robot's token may be made before its slot."""
    if isinstance(slots, str):
        slots = slots.split(",")
    if not isinstance(slots, list | tuple):
        raise InvalidInput('slots must be a list of slot names, e.g. ["detector", "policy"]')
    cleaned = set()
    for raw in slots:
        name = raw.strip() if isinstance(raw, str) else raw
        if name == "":
            continue
        if not isinstance(name, str) or not SLUG_RE.match(name) or len(name) > SLOT_NAME_MAX:
            raise InvalidInput(
                f"slot {raw!r} must be a slot name of 1-{SLOT_NAME_MAX} letters, digits, '-' or '_'"
            )
        cleaned.add(name)
    return sorted(cleaned)


# Every API request asks this: compiled once (modelmgr.registry.prepared). token_hash is
# unique, so no ORDER BY.
_ACTIVE_TOKEN = PreparedQuery(
    lambda token_hash: (
        ApiToken.objects.active()
        .select_related("user")
        .filter(token_hash=token_hash)
        .order_by()[:1]
    ),
    token_hash="\x00token-hash",
)


def token_for_use(raw: str) -> ApiToken | None:
    """The active token ``raw`` of an active user, or None (unknown, revoked, inactive).

    Touches last_used_at at most once a minute: no write on every robot request. Used by
    the web API (modelmgr.api.auth) and the worker's serving port alike."""
    found = next(iter(_ACTIVE_TOKEN.run(token_hash=ApiToken.hash_token(raw))), None)
    if found is None or not found.user.is_active:
        return None
    now = timezone.now()
    if found.last_used_at is None or (now - found.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
    return found


def _target(user, name: str) -> str:
    return f"{user.get_username()}/{name}"


def token_create(
    *,
    user,
    name: str,
    scopes: list[str] | tuple[str, ...] = ("read",),
    slots: list[str] | tuple[str, ...] = (),
    actor=None,
    actor_label: str | None = None,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its raw value; only the hash is stored.

    ``slots`` limits the slots it may predict on (empty = every slot)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a token needs a name of 1-100 characters")
    scopes = clean_scopes(scopes)
    slots = clean_token_slots(list(slots))
    raw = ApiToken.generate()
    with transaction.atomic():
        if ApiToken.objects.active().filter(user=user, name=name).exists():
            raise VersionConflict(
                f"{user.get_username()} already has an active token named {name!r}"
            )
        token = ApiToken.objects.create(
            user=user,
            name=name,
            token_hash=ApiToken.hash_token(raw),
            scopes=scopes,
            slots=slots,
        )
        audit_record(
            actor=actor,
            action="token.create",
            target_type="token",
            target=_target(user, name),
            after={"id": token.pk, "name": name, "scopes": scopes, "slots": slots},
            actor_label=actor_label,
        )
    return token, raw


def token_revoke(*, user, name: str, actor=None, actor_label: str | None = None) -> int:
    """Revoke the user's active tokens called ``name``; returns how many were revoked."""
    with transaction.atomic():
        tokens = ApiToken.objects.active().select_for_update().filter(user=user, name=name)
        ids = list(tokens.values_list("pk", flat=True))
        if not ids:
            raise NotFound(f"{user.get_username()} has no active token named {name!r}")
        ApiToken.objects.filter(pk__in=ids).update(revoked=True)
        audit_record(
            actor=actor,
            action="token.revoke",
            target_type="token",
            target=_target(user, name),
            before={"ids": ids, "revoked": False},
            after={"ids": ids, "revoked": True},
            actor_label=actor_label,
        )
    return len(ids)
