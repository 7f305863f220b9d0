"""Keyset pagination on ``-id`` with an opaque cursor.

Offsets skip or repeat rows when rows are added or removed between pages; a keyset
("everything older than the last id I saw") never does, and stays fast on big tables.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from django.db.models import Q, QuerySet

from modelmgr.exceptions import ModelmgrError

MAX_LIMIT = 200
T = TypeVar("T")


class BadCursor(ModelmgrError):
    status = 400


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    raw = json.dumps({"id": last_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        last_id = data["id"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise BadCursor(f"cursor {cursor!r} is not a cursor this API handed out") from exc
    if not isinstance(last_id, int) or isinstance(last_id, bool) or last_id < 0:
        raise BadCursor(f"cursor {cursor!r} is not a cursor this API handed out")
    return last_id


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadCursor(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def keyset_page(queryset: QuerySet, *, cursor: str | None, limit: int) -> Page:
    """Return one page of ``queryset`` ordered by ``-id``.

    1. Keep only rows older than the cursor's id (when a cursor is given).
    2. Fetch ``limit + 1`` rows: the extra row only tells whether a next page exists.
    3. The next cursor points after the last row returned.
    """
    limit = check_limit(limit)
    if cursor:
        queryset = queryset.filter(id__lt=decode_cursor(cursor))
    rows = list(queryset.order_by("-id")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=rows, next_cursor=encode_cursor(rows[-1].id) if has_more else None)


# --- newest first on (created_at, id): a model's versions ----------------------------


def encode_newest_cursor(created_at: datetime, last_id: int) -> str:
    raw = json.dumps({"t": created_at.isoformat(), "id": last_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_newest_cursor(cursor: str) -> tuple[datetime, int]:
    refused = BadCursor(f"cursor {cursor!r} is not a cursor this API handed out")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        last_id, stamp = data["id"], datetime.fromisoformat(data["t"])
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise refused from exc
    if not isinstance(last_id, int) or isinstance(last_id, bool) or last_id < 0:
        raise refused
    if stamp.tzinfo is None:
        raise refused
    return stamp, last_id


def keyset_page_newest(queryset: QuerySet, *, cursor: str | None, limit: int) -> Page:
    """One page of ``queryset`` ordered by ``(-created_at, -id)``: what the (model,
    created_at, id) and (model, status, created_at, id) indexes walk, so a page costs
    the same on the first page and the thousandth.

    After the cursor means ``(created_at, id) < (t, id)``, written as a range on
    created_at (which the index seeks) plus a filter that only the rows sharing the
    cursor's created_at need.
    """
    limit = check_limit(limit)
    if cursor:
        stamp, last_id = decode_newest_cursor(cursor)
        queryset = queryset.filter(created_at__lte=stamp).filter(
            Q(created_at__lt=stamp) | Q(id__lt=last_id)
        )
    rows = list(queryset.order_by("-created_at", "-id")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    next_cursor = encode_newest_cursor(last.created_at, last.id) if has_more else None
    return Page(items=rows, next_cursor=next_cursor)
