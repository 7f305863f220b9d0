"""/status: the worker's state beside the database's desired state, per slot."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from modelmgr.deploy.workers import deploy_status

router = Router(tags=["status"])


class WorkerOut(Schema):
    name: str = Field("", description="the worker's registered name (MODELMGR_WORKER_NAME)")
    url: str = Field(description="its control API")
    serve_url: str = Field("", description="its public serving port, for a load balancer")
    group: str = Field("", description="its placement group (MODELMGR_WORKER_GROUP)")
    registered: bool = Field(False, description="false: the MODELMGR_WORKER_URL fallback")
    up: bool = Field(True, description="heartbeats on time (a down worker gets nothing)")
    heartbeat_at: str | None = None
    started_at: str | None = None
    reachable: bool
    error: str = Field(description="why the worker could not be asked")
    status: dict[str, Any] | None = Field(
        description="the worker's GET /status: ready, device, memory, slots, models, errors"
    )


class SlotStateOut(Schema):
    slot: str
    task: str | None
    desired: dict[str, Any] | None = Field(description="what the database says it serves")
    actual: dict[str, Any] | None = Field(description="what the worker serves")
    error: str = Field(description="the worker's last error for this slot")
    drift: bool | None = Field(description="desired != actual; null when the worker is down")


class StatusOut(Schema):
    worker: WorkerOut = Field(description="the worker the drift below is read from")
    workers: list[WorkerOut] = Field(description="every worker: up ones first, then down")
    slots: list[SlotStateOut]
    in_sync: bool | None
    drifting: list[str]


@router.get("/status", response=StatusOut, summary="Worker state and drift from the desired state")
def status(request: HttpRequest):
    """Always 200: a worker that is down shows as ``reachable: false`` with the cause."""
    return deploy_status()
