"""The worker's public serving port: what robots call, with API tokens.

A raw ASGI app like the control API (inference.server): it is the hot path. Routes:

- ``GET /healthz``, ``GET /readyz``, ``GET /v2/health/live``, ``GET /v2/health/ready``: no
  token. ``GET /metrics``: Prometheus text (``MODELMGR_METRICS_TOKEN`` when set).
- ``POST /api/v1/slots/{slot}/predict``: the web API's predict formats (inference.serving.v1).
- ``/v2``, ``/v2/models/{slot}[/versions/{version}][/ready|/infer]``: the Open Inference
  Protocol (inference.serving.v2).
- ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``: the
  OpenAI-compatible API of the slots that serve language models (inference.serving.openai).
- ``GET /api/tags``, ``GET /api/ps``, ``POST /api/show``, ``POST /api/generate``,
  ``POST /api/chat``: the Ollama-compatible API of the same slots (inference.serving.ollama).

Everything but the health probes needs a bearer token with the ``read`` scope (401
otherwise, before the body is read); a token limited to other slots gets 403 naming the
slot. Errors are ``{"detail": "..."}``, and on /v2 also ``{"error": "..."}`` as the
protocol's clients read it.
"""

from __future__ import annotations

import contextlib
import logging
import re

from django.conf import settings

from inference.asgi import predict_body_limit_check, read_body, send_json
from inference.metrics import metrics_endpoint, request_record, slot_label
from inference.pool import short_error
from inference.serving import v1
from inference.serving.auth import CHALLENGE, TokenCache
from inference.serving.ollama import PATHS as OLLAMA_PATHS
from inference.serving.ollama import Ollama
from inference.serving.openai import PATHS as OPENAI_PATHS
from inference.serving.openai import OpenAI
from inference.serving.runner import InferRunner
from inference.serving.v2 import V2
from inference.worker import Worker
from modelmgr.exceptions import ModelmgrError, WorkerUnavailable

log = logging.getLogger("inference")
PREDICT_PATH = re.compile(r"^/api/v1/slots/(?P<slot>[-a-zA-Z0-9_]+)/predict/?$")


class ServingApp:
    def __init__(self, worker: Worker, runner: InferRunner):
        self.worker = worker
        self.runner = runner
        self.tokens = TokenCache(settings.MODELMGR_TOKEN_CACHE_S)
        self.v2 = V2(worker, runner)
        self.openai = OpenAI(worker, self.tokens)
        self.ollama = Ollama(worker, self.tokens)

    def close(self) -> None:
        self.tokens.close()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            if method == "GET" and path == "/healthz":
                return await send_json(send, 200, {"status": "live"})
            if method == "GET" and path == "/readyz":
                return await self.readyz(send)
            if method == "GET" and path == "/metrics":
                return await metrics_endpoint(scope, receive, send)
            if path.startswith("/v2/health/"):
                return await self.v2.health(method, path, send)
            match = PREDICT_PATH.match(path)
            if match is not None:
                return await self.predict(match["slot"], scope, receive, send)
            if path.rstrip("/") in OPENAI_PATHS:
                return await self.openai.handle(scope, receive, send)
            if path.rstrip("/") in OLLAMA_PATHS:
                return await self.ollama.handle(scope, receive, send)
            if path == "/v2" or path.startswith("/v2/"):
                return await self.v2.handle(scope, receive, send, self.tokens)
            await self.tokens.authorize(scope["headers"])
            await send_json(send, 404, {"detail": f"no such endpoint: {path}"})
        except ModelmgrError as exc:
            await self.error(scope, send, exc.status, exc.detail)
        except Exception as exc:
            log.exception("%s %s failed", method, path)
            with contextlib.suppress(Exception):  # a response that had begun
                await self.error(scope, send, 500, f"internal error: {short_error(exc)}")

    async def error(self, scope, send, status: int, detail: str) -> None:
        headers = []
        if status == 401:
            headers.append(CHALLENGE)
        elif status == 503:
            headers.append((b"retry-after", b"1"))
        payload = {"detail": detail}
        if scope["path"].startswith("/v2"):
            payload = {"error": detail, **payload}
        await send_json(send, status, payload, headers)

    async def readyz(self, send) -> None:
        if self.worker.ready:
            return await send_json(send, 200, {"status": "ready"})
        await send_json(
            send, 503, {"detail": self.worker.not_ready_detail}, [(b"retry-after", b"1")]
        )

    async def predict(self, slot: str, scope, receive, send) -> None:
        if scope["method"] != "POST":
            await self.tokens.authorize(scope["headers"])
            raise MethodNotAllowed("use POST for /api/v1/slots/{slot}/predict")
        await self.tokens.authorize(scope["headers"], slot=slot)
        predict_body_limit_check(scope["headers"])
        if not self.worker.ready:
            request_record(slot_label(self.worker, slot), None, 503, 0.0)
            raise WorkerUnavailable(self.worker.not_ready_detail)
        await v1.predict(self.runner, slot, scope, await read_body(receive), send)


class MethodNotAllowed(ModelmgrError):
    status = 405
