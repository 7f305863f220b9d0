"""Probes and metrics of the web process: /healthz, /readyz, /metrics (anonymous).

- ``/healthz``: the process answers (liveness); touches nothing else.
- ``/readyz``: the database answers and the worker answers and serves; 503 with a
  ``detail`` naming what is not ready (the pages and the registry API keep working
  while the worker is down; predictions do not).
- ``/metrics``: Prometheus text (modelmgr.metrics). Open to anyone who can reach the
  port, like most exporters on a private network; with MODELMGR_METRICS_TOKEN set it
  needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelmgr.deploy.workers import workers_status
from modelmgr.metrics import REGISTRY

RETRY_AFTER_S = "5"


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def _database_problem() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return f"the database does not answer: {exc}"
    return ""


def _worker_problem(worker: dict) -> str:
    if not worker["reachable"]:
        return f"the inference worker at {worker['url']} does not answer: {worker['error']}"
    status = worker["status"] or {}
    if not status.get("ready"):
        return "the inference worker is not ready yet (restoring its slots)"
    return ""


@require_GET
def readyz(request):
    worker = workers_status()[0]
    checks = {"database": _database_problem(), "worker": _worker_problem(worker)}
    problems = [problem for problem in checks.values() if problem]
    body = {"ready": not problems, "checks": {k: v or "ok" for k, v in checks.items()}}
    if not problems:
        return JsonResponse(body)
    response = JsonResponse({**body, "detail": "; ".join(problems)}, status=503)
    response["Retry-After"] = RETRY_AFTER_S
    return response


@require_GET
def metrics(request):
    token = settings.MODELMGR_METRICS_TOKEN
    if token and not hmac.compare_digest(
        request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
    ):
        response = JsonResponse(
            {"detail": "metrics need the bearer token MODELMGR_METRICS_TOKEN"}, status=401
        )
        response["WWW-Authenticate"] = "Bearer"
        return response
    workers_status()  # refreshes modelmgr_worker_up / _ready
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
