"""The worker's private control API: a small raw ASGI app served by uvicorn.

Robots use the public serving port (inference.serving.app); /infer here is the same
inference without auth, for the web process and tools on the private side
(inference.serving.runner does the work). Control calls (switch, load, unload,
reconcile) run in threads and never hold up serving. Errors are {"detail": "..."} with
the status of the domain exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from inference.asgi import BadRequest, json_payload, read_body, send_json, version_id_of
from inference.errors import InvalidInput
from inference.metrics import metrics_endpoint, metrics_watch, request_record, slot_label
from inference.pool import short_error
from inference.serving import v1
from inference.serving.runner import InferRunner
from inference.worker import Worker, db_pass
from modelmgr.exceptions import ModelmgrError

log = logging.getLogger("inference")
KEEPALIVE_S = 5.0
# How often /events looks for a change: well inside the UI's 100 ms promise.
STATE_POLL_S = 0.05
VOLATILE_MODEL_FIELDS = ("in_flight", "last_used")
# Measured memory moves by a few pages all the time: a change of its own is no state
# change (the page's 10 s poll refreshes it), or /events would send one every 50 ms.
VOLATILE_MEMORY_FIELDS = (
    "process_rss_bytes",
    "measured_bytes",
    "cuda_allocated_bytes",
    "cuda_reserved_bytes",
)


def state_digest(status: dict) -> str:
    """The status without what every request changes, as comparable text."""
    models = [
        {k: v for k, v in model.items() if k not in VOLATILE_MODEL_FIELDS}
        for model in status.get("models") or []
    ]
    memory = {
        k: v for k, v in (status.get("memory") or {}).items() if k not in VOLATILE_MEMORY_FIELDS
    }
    return json.dumps({**status, "models": models, "memory": memory}, sort_keys=True, default=str)


class WorkerApp:
    def __init__(self, worker: Worker):
        self.worker = worker
        self.control = ThreadPoolExecutor(4, thread_name_prefix="control")
        # Shared with the serving port (inference.serving.app): one thread pool for models.
        self.runner = InferRunner(
            worker,
            threads=settings.MODELMGR_WORKER_INFER_THREADS,
            inline_ms=settings.MODELMGR_WORKER_INLINE_MS,
        )
        metrics_watch(worker)
        self.routes = {
            ("GET", "/metrics"): metrics_endpoint,
            ("GET", "/live"): self.live,
            ("GET", "/ready"): self.ready,
            # The names the web process and most probes use, for the same checks.
            ("GET", "/healthz"): self.live,
            ("GET", "/readyz"): self.ready,
            ("GET", "/status"): self.status,
            ("GET", "/events"): self.events,
            ("GET", "/batching"): self.batching,
            ("POST", "/switch"): self.switch,
            ("POST", "/load"): self.load,
            ("POST", "/unload"): self.unload,
            ("POST", "/reconcile"): self.reconcile,
        }

    def close(self) -> None:
        self.control.shutdown(wait=True)
        self.runner.close()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            if path.startswith("/infer/"):
                if method != "POST":
                    return await send_json(send, 405, {"detail": "use POST for /infer/{slot}"})
                return await self.infer(scope, receive, send, path[len("/infer/") :])
            handler = self.routes.get((method, path))
            if handler is None:
                allowed = any(p == path for _, p in self.routes)
                return await send_json(
                    send,
                    405 if allowed else 404,
                    {
                        "detail": f"{method} is not allowed on {path}"
                        if allowed
                        else f"no such endpoint: {path}"
                    },
                )
            await handler(scope, receive, send)
        except ModelmgrError as exc:
            await send_json(send, exc.status, {"detail": exc.detail})
        except Exception as exc:
            log.exception("%s %s failed", method, path)
            # Fails quietly when a streamed response had already begun.
            with contextlib.suppress(Exception):
                await send_json(send, 500, {"detail": f"internal error: {short_error(exc)}"})

    async def in_control_thread(self, call):
        """Run a control call in a thread that owns its database connection."""

        def run():
            with db_pass():
                return call()

        return await asyncio.get_running_loop().run_in_executor(self.control, run)

    # --- probes --------------------------------------------------------------------------
    async def live(self, scope, receive, send) -> None:
        await send_json(send, 200, {"status": "live"})

    async def ready(self, scope, receive, send) -> None:
        if not self.worker.ready:
            return await self.not_ready(send)
        await send_json(send, 200, {"ready": True})

    async def not_ready(self, send) -> None:
        await send_json(
            send,
            503,
            {"detail": self.worker.not_ready_detail, "ready": False},
            [(b"retry-after", b"1")],
        )

    async def status(self, scope, receive, send) -> None:
        await send_json(send, 200, self.worker.status())

    async def batching(self, scope, receive, send) -> None:
        """Per batching slot: batches run, requests in them, sizes, time queued."""
        await send_json(send, 200, {"slots": self.runner.batcher.stats()})

    async def events(self, scope, receive, send) -> None:
        """NDJSON: the worker's status now, then again each time it changes.

        The web process relays these to browsers (modelmgr.deploy.worker_events). The
        status is compared every STATE_POLL_S without the per-request counters
        (``in_flight``, ``last_used``), which would make every request a change; a
        blank line every KEEPALIVE_S shows the stream is alive.
        """
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/x-ndjson")],
            }
        )
        await read_body(receive)  # the (empty) request; what receive() says next is a hang-up
        disconnected = asyncio.ensure_future(receive())
        last_digest, last_sent = None, 0.0
        try:
            while not disconnected.done():
                status = self.worker.status()
                digest = state_digest(status)
                now = time.monotonic()
                if digest != last_digest:
                    line = json.dumps({"type": "state", "status": status}).encode() + b"\n"
                    await send({"type": "http.response.body", "more_body": True, "body": line})
                    last_digest, last_sent = digest, now
                elif now - last_sent >= KEEPALIVE_S:
                    await send({"type": "http.response.body", "more_body": True, "body": b"\n"})
                    last_sent = now
                await asyncio.wait({disconnected}, timeout=STATE_POLL_S)
        finally:
            disconnected.cancel()
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b""})

    # --- serving ---------------------------------------------------------------------------
    async def infer(self, scope, receive, send, slot: str) -> None:
        if not self.worker.ready:
            request_record(slot_label(self.worker, slot), None, 503, 0.0)
            return await self.not_ready(send)
        await v1.predict(self.runner, slot, scope, await read_body(receive), send)

    # --- control -------------------------------------------------------------------------------
    async def switch(self, scope, receive, send) -> None:
        """Stream the switch's events as NDJSON lines, each flushed when it happens."""
        payload = json_payload(await read_body(receive))
        switch_id = payload.get("switch_id", "")
        slots = payload.get("slots")
        if not isinstance(switch_id, str):
            raise BadRequest("switch_id must be a string")
        if not isinstance(slots, dict) or not slots:
            raise InvalidInput('slots must be a non-empty object {"slot": version_id}')
        for name, version_id in slots.items():
            if not name or (
                version_id is not None
                and (not isinstance(version_id, int) or isinstance(version_id, bool))
            ):
                raise InvalidInput(f"slot {name!r}: the version must be an integer id or null")
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def emit(event: dict) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        def run() -> None:
            try:
                self.worker.switch(switch_id=switch_id, slots=slots, emit=emit)
            except Exception as exc:
                log.exception("switch %s crashed", switch_id)
                emit(
                    {
                        "event": "result",
                        "ok": False,
                        "errors": dict.fromkeys(slots, f"the worker failed: {short_error(exc)}"),
                    }
                )

        task = asyncio.ensure_future(self.in_control_thread(run))
        task.add_done_callback(lambda _: events.put_nowait(None))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/x-ndjson"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        while True:
            try:
                event = await asyncio.wait_for(events.get(), KEEPALIVE_S)
            except TimeoutError:
                # A blank line while queued behind another switch or in a long load, so
                # the caller's read timeout measures silence, not the switch's length.
                await send({"type": "http.response.body", "more_body": True, "body": b"\n"})
                continue
            if event is None:
                break
            line = json.dumps(event).encode() + b"\n"
            await send({"type": "http.response.body", "more_body": True, "body": line})
        await send({"type": "http.response.body", "body": b""})

    async def load(self, scope, receive, send) -> None:
        payload = json_payload(await read_body(receive))
        version_id, pin = version_id_of(payload), bool(payload.get("pin", False))
        result = await self.in_control_thread(
            lambda: self.worker.load(version_id=version_id, pin=pin)
        )
        await send_json(send, 200, result)

    async def unload(self, scope, receive, send) -> None:
        version_id = version_id_of(json_payload(await read_body(receive)))
        result = await self.in_control_thread(lambda: self.worker.unload(version_id=version_id))
        await send_json(send, 200, result)

    async def reconcile(self, scope, receive, send) -> None:
        await read_body(receive)
        if b"wait=0" in scope.get("query_string", b""):
            self.worker.nudge()
            return await send_json(send, 202, {"nudged": True})
        result = await self.in_control_thread(lambda: self.worker.reconcile_once(force=True))
        await send_json(send, 200, result)
