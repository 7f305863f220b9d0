"""The control API's drift routes (private port; the web's /api/v1/slots/{slot}/drift calls them).

- ``GET /drift/{slot}``: the slot's drift report (inference.drift.monitor.report).
- ``POST /drift/{slot}/reference`` ``{"inputs": {name: nested lists}}``: the served
  version's reference becomes this sample (at least MIN_SAMPLE_ROWS rows); the model runs
  on it so that the outputs get a reference too.
- ``POST /drift/{slot}/reset`` ``{"reference_requests": N | null}``: forget the slot's
  references; the next N requests (this N from now on, when given) are the new one.

Errors are ``{"detail"}`` with a 4xx: 404 slot not served, 422 a malformed sample.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np

from inference.asgi import BadRequest, json_payload, read_body, send_json
from inference.codec import JSON, decode_inputs
from inference.errors import InvalidInput
from inference.pool import short_error
from modelmgr.exceptions import ModelmgrError, NotFound

MIN_SAMPLE_ROWS = 20
MAX_REFERENCE_REQUESTS = 1_000_000


class DriftControl:
    def __init__(self, worker, threads):
        self.worker = worker
        self.threads = threads

    async def handle(self, scope, receive, send, rest: str) -> None:
        slot, _, action = rest.strip("/").partition("/")
        method = scope["method"]
        if not slot:
            raise NotFound("name a slot: /drift/{slot}")
        if action == "" and method == "GET":
            return await send_json(send, 200, self.report(slot))
        if action == "reference" and method == "POST":
            body = await read_body(receive)
            result = await self.reference(slot, body)
            return await send_json(send, 200, result)
        if action == "reset" and method == "POST":
            payload = json_payload(await read_body(receive))
            self.worker.drift.reset(
                slot, reference_requests=reference_requests_of(payload.get("reference_requests"))
            )
            return await send_json(send, 200, self.report(slot))
        if action in ("", "reference", "reset"):
            raise MethodNotAllowed(f"{method} is not allowed on /drift/{{slot}}/{action}")
        raise NotFound(f"no such endpoint: /drift/{rest}")

    def report(self, slot: str) -> dict:
        route = self.worker.router.table.get(slot)
        serving = route.entry.version_id if route is not None else None
        return self.worker.drift.report(slot, serving_version=serving)

    async def reference(self, slot: str, body: bytes) -> dict:
        try:
            payload = json.loads(body or b"{}")
        except ValueError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), dict):
            raise InvalidInput('a reference sample is {"inputs": {name: nested lists}}')
        worker = self.worker
        entry = worker.router.acquire(slot)
        try:
            if entry.model.tensor_refusal:
                raise InvalidInput(
                    f"drift watches tensor models; slot {slot} serves {entry.ref}, "
                    "which takes no tensor inputs"
                )
            loop = asyncio.get_running_loop()
            inputs = await loop.run_in_executor(
                self.threads, decode_inputs, JSON, body, entry.signature
            )
            rows = min((len(v) if np.ndim(v) else 1) for v in inputs.values())
            if rows < MIN_SAMPLE_ROWS:
                raise InvalidInput(
                    f"a reference sample needs at least {MIN_SAMPLE_ROWS} rows (the first "
                    f"axis of every input), got {rows}"
                )
            try:
                outputs = await loop.run_in_executor(self.threads, entry.model.infer, inputs)
            except Exception as exc:  # noqa: BLE001 - the sample's fault as far as we know
                raise InvalidInput(
                    f"{entry.ref} could not run the reference sample: {short_error(exc)}"
                ) from None
            version_id = entry.version_id
        finally:
            worker.router.release(entry)
        tracker = worker.drift.reference_set(slot, version_id, inputs, outputs)
        return {"slot": slot, "version_id": version_id, "rows": rows, "tracker": tracker}


def reference_requests_of(value) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"reference_requests must be an integer, got {value!r}")
    if not 1 <= value <= MAX_REFERENCE_REQUESTS:
        raise InvalidInput(
            f"reference_requests must be from 1 to {MAX_REFERENCE_REQUESTS}, got {value}"
        )
    return value


class MethodNotAllowed(ModelmgrError):
    status = 405
