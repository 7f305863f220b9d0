"""Helpers every page shares: partial rendering, error text, form parsing."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from modelmgr.exceptions import ModelmgrError
from modelmgr.registry.validation import InvalidInput


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def render_page(
    request: HtmxHttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    partial: str | None = None,
    status: int = 200,
) -> HttpResponse:
    """The whole page, or only ``partial`` when htmx asks (and one is named).

    A history-restore request (Back after the cache lost the page) needs the whole page.
    """
    wants_partial = bool(request.htmx) and not request.htmx.history_restore_request
    name = f"{template}#{partial}" if partial and wants_partial else template
    return render(request, name, context, status=status)


def error_text(exc: Exception) -> str:
    """What the user reads when a service refuses: the domain error's detail."""
    if isinstance(exc, ModelmgrError):
        return exc.detail
    return f"{type(exc).__name__}: {exc}"


def parse_int(raw: str | None, *, name: str) -> int | None:
    """``raw`` as a whole number, None when empty; InvalidInput naming ``name`` when it
    is not one (a page reports a filter it cannot read instead of ignoring it)."""
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, not {raw!r}") from None


def parse_bool(raw: str | None) -> bool | None:
    if raw in (None, ""):
        return None
    return raw.lower() in ("1", "true", "on", "yes")


def other_owner(model, user) -> str:
    """The name of the model's owner when it is not ``user`` (staff see every
    namespace), else "": what a link to the model must name as ``owner``."""
    return "" if model.owner_id == user.pk else model.owner.get_username()


def owner_query(model, user) -> str:
    """``?owner=<name>`` when the model is someone else's, percent-encoded: a username
    may hold a ``+``, which a query reads as a space."""
    owner = other_owner(model, user)
    return f"?owner={quote(owner)}" if owner else ""


FIRST_PAGE = "-"


def cursor_trail(request: HttpRequest) -> tuple[str, list[str]]:
    """The current keyset cursor and the cursors of the pages before it ("" = first).

    Keyset pages only know "next"; the trail in the URL is what makes "previous" work.
    """
    raw = request.GET.get("trail", "")
    trail = [("" if part == FIRST_PAGE else part) for part in raw.split(",")] if raw else []
    return request.GET.get("cursor", ""), trail


def page_links(
    filters: dict[str, str], cursor: str, trail: list[str], next_cursor: str | None
) -> dict[str, str]:
    """Query strings for the "next" and "previous" links, keeping the filters."""

    def url(to: str, to_trail: list[str]) -> str:
        params = {k: v for k, v in filters.items() if v}
        if to:
            params["cursor"] = to
        if to_trail:
            params["trail"] = ",".join(part or FIRST_PAGE for part in to_trail)
        return "?" + urlencode(params)

    return {
        "next_url": url(next_cursor, [*trail, cursor]) if next_cursor else "",
        "prev_url": url(trail[-1], trail[:-1]) if trail else "",
        "page_number": str(len(trail) + 1),
    }
