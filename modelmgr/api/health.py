from __future__ import annotations

from django.db import connection
from ninja import Router

router = Router(tags=["health"])


@router.get("/health", auth=None, summary="Liveness and database check (anonymous)")
def health(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"status": "ok"}
