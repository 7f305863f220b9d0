"""The worker's private control API: a small raw ASGI app served by uvicorn.

Robots use the public serving port (inference.serving.app); /infer here is the same
inference without auth, for the web process and tools on the private side
(inference.serving.runner does the work), and so are the OpenAI routes
(/v1/models, /v1/chat/completions, /v1/completions: inference.serving.openai, the same
handler as on the serving port), which the web relays for its chat playground. Control
calls (switch, load, unload, reconcile) run in threads and never hold up serving.
Errors are {"detail": "..."} with the status of the domain exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from inference.asgi import (
    BadRequest,
    json_payload,
    read_body,
    send_json,
    switch_id_of,
    switch_request,
    version_id_of,
)
from inference.drift.control import DriftControl
from inference.drift.metrics import drift_metrics_watch
from inference.fit import environment
from inference.metrics import metrics_endpoint, metrics_watch, request_record, slot_label
from inference.pool import short_error
from inference.profile import Profiler
from inference.serving import v1
from inference.serving.auth import PrivatePortAccess
from inference.serving.openai import PATHS as OPENAI_PATHS
from inference.serving.openai import OpenAI
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
    for model in models:
        # A keep-alive expiry moves with every request; its keep_alive_s does not.
        if "language_model" in model:
            model["language_model"] = {
                k: v for k, v in model["language_model"].items() if k != "expires_at"
            }
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
        drift_metrics_watch(worker.drift)
        self.drift = DriftControl(worker, self.runner.threads)
        # The serving port's OpenAI routes, same code, for the web's playground relay.
        self.openai = OpenAI(worker, PrivatePortAccess())
        # One profile at a time, on a copy of its own (inference.profile).
        self.profiler = Profiler(worker)
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
            ("GET", "/arms"): self.arms,
            ("POST", "/switch"): self.switch,
            ("POST", "/prepare"): self.prepare,
            ("POST", "/commit"): self.commit,
            ("POST", "/abort"): self.abort,
            ("POST", "/load"): self.load,
            ("POST", "/unload"): self.unload,
            ("POST", "/preview"): self.preview,
            ("POST", "/profile"): self.profile,
            ("GET", "/environment"): self.environment,
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
            if path.rstrip("/") in OPENAI_PATHS:
                return await self.openai.handle(scope, receive, send)
            if path.startswith("/drift/"):
                return await self.drift.handle(scope, receive, send, path[len("/drift/") :])
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
        # The profile running now, if any ({"version_id", "ref", "since"}: inference.profile).
        await send_json(send, 200, {**self.worker.status(), "profiling": self.profiler.running})

    async def batching(self, scope, receive, send) -> None:
        """Per batching slot: batches run, requests in them, sizes, time queued."""
        await send_json(send, 200, {"slots": self.runner.batcher.stats()})

    async def arms(self, scope, receive, send) -> None:
        """Per served slot, its arms (primary, canary, shadow) side by side;
        ``?samples=1`` adds each arm's kept latencies (the web merges workers' arms)."""
        table = self.worker.router.table
        samples = b"samples=1" in scope.get("query_string", b"")
        snapshot = self.worker.arms.snapshot(dict(table), samples=samples)
        await send_json(send, 200, {"slots": snapshot})

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
        switch_id, slots, shares = switch_request(json_payload(await read_body(receive)))

        def run(emit) -> None:
            self.worker.switch(switch_id=switch_id, slots=slots, emit=emit, shares=shares)

        await self.stream_switch(send, switch_id, slots, run)

    async def prepare(self, scope, receive, send) -> None:
        """Phase 1 of a fan-out switch (inference.phases), streamed like /switch; its
        result says whether this worker is ready to swap."""
        switch_id, slots, shares = switch_request(json_payload(await read_body(receive)))

        def run(emit) -> None:
            self.worker.phases.prepare(switch_id=switch_id, slots=slots, emit=emit, shares=shares)

        await self.stream_switch(send, switch_id, slots, run)

    async def commit(self, scope, receive, send) -> None:
        """Phase 2: swap what /prepare loaded; answers the switch's result."""
        switch_id = switch_id_of(json_payload(await read_body(receive)))
        # Not in the control pool: its threads may all wait for the lock this one holds.
        result = await asyncio.to_thread(self.worker.phases.commit, switch_id=switch_id)
        await send_json(send, 200, result)

    async def abort(self, scope, receive, send) -> None:
        """Phase 2 when another worker failed: unload what /prepare loaded."""
        switch_id = switch_id_of(json_payload(await read_body(receive)))
        result = await asyncio.to_thread(self.worker.phases.abort, switch_id=switch_id)
        await send_json(send, 200, result)

    async def stream_switch(self, send, switch_id: str, slots: dict, run) -> None:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def emit(event: dict) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        def guarded() -> None:
            try:
                run(emit)
            except Exception as exc:
                log.exception("switch %s crashed", switch_id)
                emit(
                    {
                        "event": "result",
                        "ok": False,
                        "errors": dict.fromkeys(slots, f"the worker failed: {short_error(exc)}"),
                    }
                )

        task = asyncio.ensure_future(self.in_control_thread(guarded))
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

    async def preview(self, scope, receive, send) -> None:
        """{"version_ids": [...]}: memory needed, free, evictions in order; changes nothing."""
        payload = json_payload(await read_body(receive))
        ids = payload.get("version_ids")
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise BadRequest('send {"version_ids": [<int>, ...]}')
        result = await self.in_control_thread(lambda: self.worker.preview(version_ids=ids))
        await send_json(send, 200, result)

    async def profile(self, scope, receive, send) -> None:
        """Latency, throughput and memory of a version on a copy loaded for it alone."""
        await self.profiler.handle(scope, receive, send, self.in_control_thread)

    async def environment(self, scope, receive, send) -> None:
        """The worker's Python version and installed packages (dependency checks)."""
        await send_json(send, 200, environment())

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
