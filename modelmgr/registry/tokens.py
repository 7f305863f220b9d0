"""API tokens for robots: created (shown once, stored hashed) and revoked by name."""

from __future__ import annotations

from django.db import transaction

from modelmgr.audit import audit_record
from modelmgr.exceptions import NotFound, VersionConflict
from modelmgr.models import ApiToken
from modelmgr.registry.validation import InvalidInput


def clean_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    cleaned = sorted({s.strip().lower() for s in scopes if s.strip()})
    unknown = [s for s in cleaned if s not in ApiToken.Scope.values]
    if unknown or not cleaned:
        raise InvalidInput(
            f"scopes must be a non-empty subset of {', '.join(ApiToken.Scope.values)}; "
            f"got {', '.join(scopes) or 'none'}"
        )
    return cleaned


def _target(user, name: str) -> str:
    return f"{user.get_username()}/{name}"


def token_create(
    *,
    user,
    name: str,
    scopes: list[str] | tuple[str, ...] = ("read",),
    actor=None,
    actor_label: str | None = None,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its raw value; only the hash is stored."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a token needs a name of 1-100 characters")
    scopes = clean_scopes(scopes)
    raw = ApiToken.generate()
    with transaction.atomic():
        if ApiToken.objects.active().filter(user=user, name=name).exists():
            raise VersionConflict(
                f"{user.get_username()} already has an active token named {name!r}"
            )
        token = ApiToken.objects.create(
            user=user, name=name, token_hash=ApiToken.hash_token(raw), scopes=scopes
        )
        audit_record(
            actor=actor,
            action="token.create",
            target_type="token",
            target=_target(user, name),
            after={"id": token.pk, "name": name, "scopes": scopes},
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
