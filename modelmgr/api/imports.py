"""/imports: import a model from an http(s) URL, watch, cancel, retry, delete."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from modelmgr.api.auth import request_actor_label
from modelmgr.imports import selectors, services
from modelmgr.models import DownloadState, Task
from modelmgr.registry.pagination import MAX_LIMIT

router = Router(tags=["imports"])


class ImportIn(Schema):
    url: str = Field(
        description="http:// or https:// address of a model file or a .zip",
        examples=["https://huggingface.co/org/repo/resolve/main/model.onnx"],
    )
    model: str = Field(description="model name (slug); registered on its first version")
    version: str | None = Field(None, description="default: the next free number")
    task: str | None = Field(None, description=f"for a new model; one of: {', '.join(Task.values)}")
    sha256: str | None = Field(None, description="expected sha256 of the download (hex)")


class ImportOut(Schema):
    id: int
    owner: str
    model: str
    version: str | None
    task: str | None
    url: str
    host: str
    filename: str
    state: str = Field(description=f"one of: {', '.join(DownloadState.values)}")
    bytes_done: int
    bytes_total: int | None
    progress: float | None = Field(description="0..1, null while the size is unknown")
    speed_bps: float = Field(description="recent download speed, bytes per second")
    eta_seconds: float | None
    attempts: int
    error: str
    expected_sha256: str | None
    sha256: str | None
    result: str | None = Field(description="name@version created by the import")
    result_version_id: int | None
    resumable_bytes: int = Field(description="bytes kept for a retry to resume from")
    can_cancel: bool
    can_retry: bool
    can_delete: bool
    deleted: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ImportPage(Schema):
    items: list[ImportOut]
    next_cursor: str | None


class ImportFilters(Schema):
    state: str | None = Field(None, description="comma-separated states")
    cursor: str | None = None
    limit: int = Field(50, ge=1, le=MAX_LIMIT)


def _out(request: HttpRequest, job_id: int) -> dict:
    return selectors.import_payload(selectors.import_get(user=request.user, job_id=job_id))


@router.post("/imports", response={202: ImportOut}, summary="Import a model from a URL")
def create_import(request: HttpRequest, payload: ImportIn):
    """Queue a download of ``url`` as a new version of your model ``model``.

    The URL is checked at once (scheme, host allow-list, private addresses: 400/422);
    the download runs in the background: follow it with GET /imports/{id} or the
    ``import.progress`` events on /ws/events/.
    """
    job = services.import_create(
        owner=request.user,
        url=payload.url,
        model_name=payload.model,
        version=payload.version,
        task=payload.task,
        expected_sha256=payload.sha256,
        actor=request.user,
        actor_label=request_actor_label(request),
    )
    return Status(202, _out(request, job.pk))


@router.get("/imports", response=ImportPage, summary="List imports (newest first)")
def list_imports(request: HttpRequest, filters: Query[ImportFilters]):
    """Your imports; staff see everyone's."""
    page = selectors.import_list(
        user=request.user, state=filters.state, cursor=filters.cursor, limit=filters.limit
    )
    return {
        "items": [selectors.import_payload(job) for job in page.items],
        "next_cursor": page.next_cursor,
    }


@router.get("/imports/{job_id}", response=ImportOut, summary="Show one import")
def get_import(request: HttpRequest, job_id: int):
    return _out(request, job_id)


@router.post("/imports/{job_id}/cancel", response=ImportOut, summary="Cancel an import")
def cancel_import(request: HttpRequest, job_id: int):
    """Stop a queued or running import; its partial download is kept for a retry."""
    job = selectors.import_get(user=request.user, job_id=job_id)
    services.import_cancel(job=job, actor=request.user, actor_label=request_actor_label(request))
    return _out(request, job_id)


@router.post("/imports/{job_id}/retry", response=ImportOut, summary="Retry an import")
def retry_import(request: HttpRequest, job_id: int):
    """Queue a failed or cancelled import again; it resumes where it stopped if it can."""
    job = selectors.import_get(user=request.user, job_id=job_id)
    services.import_retry(job=job, actor=request.user, actor_label=request_actor_label(request))
    return _out(request, job_id)


@router.delete("/imports/{job_id}", response={204: None}, summary="Delete an import")
def delete_import(request: HttpRequest, job_id: int):
    """Forget a finished, failed or cancelled import (the version it created stays)."""
    job = selectors.import_get(user=request.user, job_id=job_id)
    services.import_delete(job=job, actor=request.user, actor_label=request_actor_label(request))
    return Status(204, None)
