"""The web process's link to the inference worker: pooled HTTP, short timeouts, clear 503s.

One ``WorkerClient`` per process (``worker_client()``) keeps persistent keep-alive
connections: a sync ``httpx.Client`` for control calls (status, switch, reconcile), and
for predictions one ``WirePool`` (modelmgr.deploy.wire: raw HTTP/1.1 over asyncio
streams, a quarter of httpx's cost) per event loop (connections belong to the loop that
opened them; daphne has one loop, the test client makes one per request).

Every call has a timeout; a worker that is stopped, unreachable or silent becomes
``WorkerUnavailable`` (503) naming the worker and the cause, never a hang. Inference
bodies travel as bytes, never parsed here.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from django.conf import settings

from modelmgr.deploy.wire import WireError, WirePool, WireResponse
from modelmgr.exceptions import ModelmgrError, WorkerUnavailable

# Pool sizes: predict traffic is many short requests; switches and status calls are few.
_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30)
_SOCKET_BASE_URL = "http://worker"


class WorkerRefused(ModelmgrError):
    """The worker answered a control call with an error; status and detail are the worker's."""

    def __init__(self, detail: str, *, status: int):
        super().__init__(detail)
        self.status = status


def _cause(exc: httpx.HTTPError, timeouts: httpx.Timeout) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection within {timeouts.connect:g} s"
    if isinstance(exc, httpx.ReadTimeout):
        return f"no answer within {timeouts.read:g} s"
    if isinstance(exc, httpx.PoolTimeout):
        return "every connection to it is busy"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc) or "connection failed"
        return f"cannot connect ({text})"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return f"the connection broke ({exc or type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


def _detail_of(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("detail"):
        return str(body["detail"])
    text = response.text.strip()
    return text[:500] or f"HTTP {response.status_code}"


class WorkerClient:
    def __init__(
        self,
        *,
        url: str,
        socket: str = "",
        connect_timeout: float = 1.0,
        timeout: float = 10.0,
        predict_timeout: float = 60.0,
        switch_timeout: float = 150.0,
    ):
        self.url = url
        self.socket = socket
        self.label = f"{url} (unix socket {socket})" if socket else url
        self._base_url = _SOCKET_BASE_URL if socket else url
        self.timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self.predict_timeout = httpx.Timeout(predict_timeout, connect=connect_timeout)
        self.switch_timeout = httpx.Timeout(timeout, connect=connect_timeout, read=switch_timeout)
        self._sync = httpx.Client(
            base_url=self._base_url,
            transport=httpx.HTTPTransport(uds=socket or None),
            timeout=self.timeout,
            limits=_LIMITS,
            trust_env=False,
        )
        self._async: dict[int, tuple[weakref.ref, Any]] = {}
        self._async_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"WorkerClient({self.label})"

    def unavailable(
        self, exc: httpx.HTTPError, timeouts: httpx.Timeout | None = None, *, doing: str = ""
    ) -> WorkerUnavailable:
        what = f" while {doing}" if doing else ""
        return WorkerUnavailable(
            f"the inference worker at {self.label} is unavailable{what}: "
            f"{_cause(exc, timeouts or self.timeout)}"
        )

    # --- sync control calls -----------------------------------------------------------

    def stream_get(self, path: str, *, timeout: httpx.Timeout):
        """A streamed GET (a context manager), for the worker's /events."""
        return self._sync.stream("GET", path, timeout=timeout)

    def _request(
        self, method: str, path: str, *, payload: Any = None, timeout: float | None = None
    ) -> httpx.Response:
        timeouts = (
            self.timeout
            if timeout is None
            else httpx.Timeout(timeout, connect=self.timeout.connect)
        )
        try:
            return self._sync.request(method, path, json=payload, timeout=timeouts)
        except httpx.HTTPError as exc:
            raise self.unavailable(exc, timeouts) from exc

    def call(
        self, method: str, path: str, payload: Any = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """A JSON control call; a worker error becomes ``WorkerRefused`` with its status."""
        response = self._request(method, path, payload=payload, timeout=timeout)
        if response.status_code >= 400:
            raise WorkerRefused(_detail_of(response), status=response.status_code)
        try:
            body = response.json()
        except ValueError:
            raise WorkerUnavailable(
                f"the inference worker at {self.label} answered {method} {path} with "
                "something that is not JSON"
            ) from None
        return body if isinstance(body, dict) else {"result": body}

    def status(self) -> dict[str, Any]:
        return self.call("GET", "/status")

    def ready(self) -> bool:
        return self._request("GET", "/ready").status_code == 200

    def reconcile(self) -> dict[str, Any]:
        """Ask the worker to converge to the database now; answers once it has."""
        return self.call("POST", "/reconcile")

    def nudge(self, *, timeout: float = 2.0) -> dict[str, Any]:
        """Ask the worker to converge soon, without waiting for it (202 at once)."""
        return self.call("POST", "/reconcile?wait=0", timeout=timeout)

    def switch_stream(
        self,
        *,
        switch_id: str,
        slots: dict[str, int | None],
        shares: dict[str, float] | None = None,
        path: str = "/switch",
    ) -> Iterator[dict[str, Any]]:
        """POST /switch (or /prepare: phase 1 of a fan-out switch) and yield its NDJSON
        events as they arrive.

        A refused request raises ``WorkerRefused``; a worker that cannot be reached, or
        whose stream breaks or falls silent for longer than the switch timeout, raises
        ``WorkerUnavailable``. The caller decides what a stream without a result means.
        """
        body: dict[str, Any] = {"switch_id": switch_id, "slots": slots}
        if shares:
            body["shares"] = shares  # canary shares (modelmgr.deploy.canary)
        try:
            with self._sync.stream(
                "POST", path, json=body, timeout=self.switch_timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise WorkerRefused(_detail_of(response), status=response.status_code)
                for line in response.iter_lines():
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue  # a torn last line of a dying worker; the caller sees no result
                    if isinstance(event, dict):
                        yield event
        except httpx.HTTPError as exc:
            raise self.unavailable(exc, self.switch_timeout, doing="switching") from exc

    def post_stream(self, path: str, payload: Any, *, doing: str = "") -> Iterator[dict[str, Any]]:
        """POST and yield the NDJSON events of the answer (the worker's /profile), with
        the switch's read timeout; an error answer raises ``WorkerRefused``."""
        try:
            with self._sync.stream(
                "POST", path, json=payload, timeout=self.switch_timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise WorkerRefused(_detail_of(response), status=response.status_code)
                for line in response.iter_lines():
                    try:
                        event = json.loads(line) if line.strip() else None
                    except ValueError:
                        continue
                    if isinstance(event, dict):
                        yield event
        except httpx.HTTPError as exc:
            raise self.unavailable(exc, self.switch_timeout, doing=doing) from exc

    # --- async data path --------------------------------------------------------------

    def _loop_local(self, make):
        """The object ``make()`` built for the running event loop (one per loop)."""
        loop = asyncio.get_running_loop()
        with self._async_lock:
            entry = self._async.get(id(loop))
            if entry is not None and entry[0]() is loop:
                return entry[1]
            # Forget those of loops that are gone (the test client's per-request loops).
            for key, (ref, _) in list(self._async.items()):
                alive = ref()
                if alive is None or alive.is_closed():
                    del self._async[key]
            made = make()
            self._async[id(loop)] = (weakref.ref(loop), made)
            return made

    def _wire_pool(self) -> WirePool:
        parts = urlsplit(self.url)
        return WirePool(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 80,
            socket=self.socket,
            connect_timeout=self.predict_timeout.connect,
            timeout=self.predict_timeout.read,
        )

    def _async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self._base_url,
            transport=httpx.AsyncHTTPTransport(uds=self.socket or None),
            timeout=self.predict_timeout,
            limits=_LIMITS,
            trust_env=False,
        )

    def stream_client(self) -> httpx.AsyncClient:
        """A new async client for one long streamed call (the LLM relay); the caller
        closes it."""
        return httpx.AsyncClient(
            base_url=self._base_url,
            transport=httpx.AsyncHTTPTransport(uds=self.socket or None),
            timeout=self.predict_timeout,
            trust_env=False,
        )

    async def infer(
        self, slot: str, *, body: bytes, content_type: str, accept: str = "", client_key: str = ""
    ) -> WireResponse | httpx.Response:
        """POST /infer/{slot} with ``body`` as is; the worker's response is returned as is
        (``status_code``, ``headers`` with lower-case names, ``content``)."""
        path = f"/infer/{quote(slot, safe='')}"
        headers = {"content-type": content_type or "application/json"}
        if accept:
            headers["accept"] = accept
        if client_key:  # the same robot keeps the same canary arm (inference.router)
            headers["x-client-key"] = client_key
        if self.socket or urlsplit(self.url).scheme == "http":
            try:
                return await self._loop_local(self._wire_pool).post(path, body, headers)
            except WireError as exc:
                raise WorkerUnavailable(
                    f"the inference worker at {self.label} is unavailable: {exc.cause}"
                ) from None
        try:  # https: a worker behind a TLS proxy
            return await self._loop_local(self._async_client).post(
                path, content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise self.unavailable(exc, self.predict_timeout) from exc

    def close(self) -> None:
        self._sync.close()


_client: WorkerClient | None = None
_client_key: tuple | None = None
_client_lock = threading.Lock()


def _settings_key() -> tuple:
    return (
        settings.MODELMGR_WORKER_URL,
        getattr(settings, "MODELMGR_WORKER_SOCKET", "") or "",
        settings.MODELMGR_WORKER_CONNECT_TIMEOUT_S,
        settings.MODELMGR_WORKER_TIMEOUT_S,
        settings.MODELMGR_PREDICT_TIMEOUT_S,
        settings.MODELMGR_SWITCH_STREAM_TIMEOUT_S,
    )


def worker_client() -> WorkerClient:
    """The process-wide client; rebuilt when the worker settings change (tests do)."""
    global _client, _client_key
    key = _settings_key()
    client = _client
    if client is not None and _client_key == key:
        return client
    with _client_lock:
        if _client is None or _client_key != key:
            url, socket, connect, timeout, predict, switch = key
            _client = WorkerClient(
                url=url,
                socket=socket,
                connect_timeout=connect,
                timeout=timeout,
                predict_timeout=predict,
                switch_timeout=switch,
            )
            _client_key = key
        return _client
