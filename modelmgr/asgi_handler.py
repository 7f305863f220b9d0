"""Django's ASGI handler, with a sync request served in one thread hop, and the request
body taken as a file when the server has one.

One hop. Django's own ASGI path runs a sync view's request as about 16 thread hops:
``request_started``, each ``MiddlewareMixin`` middleware's ``process_request`` and
``process_response`` (``sync_to_async`` each), the view, ``response.close``; and it
starts a new thread per request (``ThreadSensitiveContext``). On this project's two
cores that cost most of the 11 ms a ``GET /api/v1/health`` took (benchmarks/registry.py,
benchmarks/RESULTS.md). A request whose view is sync (every one but the web port's
predict and the other async views) now runs start to end in one call on one of a fixed
set of threads ("lanes", ``MODELMGR_WEB_THREADS``): signals, the sync middleware chain,
the view, and the response's close. A streamed response's chunks are read on the same
lane, so everything sync of one request still runs on one thread, as Django promises
(thread-bound database connections, server-side cursors). Async views keep Django's
own async path, with no extra hop.

Body file. Django's ``ASGIHandler.read_body`` copies every body chunk into a temporary
file of its own before any view runs. For a multi-gigabyte upload that second copy was
the largest single cost of ingest (about half the web process's time in
benchmarks/ingest.py). modelmgr.web_server already holds the complete body in
twisted's temporary file, and its ``receive`` callable offers it with
``take_body_file()``; any other server (or a middleware that wraps ``receive``) gets
Django's own behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from concurrent.futures import ThreadPoolExecutor

import django
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import FileResponse
from django.urls import Resolver404, resolve, set_script_prefix

_DONE = object()


class _Lane:
    """One thread that runs all the sync work of the requests given to it, in order."""

    def __init__(self, index: int):
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"django-lane-{index}")
        self.busy = 0

    async def run(self, fn, *args):
        # The caller's context variables, as asgiref's sync_to_async passes them.
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, context.run, fn, *args)


class _SyncChain(BaseHandler):
    """The middleware chain built in sync mode: no hop between middlewares."""

    def __init__(self):
        super().__init__()
        self.load_middleware(is_async=False)


class BodyFileASGIHandler(ASGIHandler):
    def __init__(self):
        super().__init__()
        self._sync_chain = _SyncChain()
        self._lanes = [_Lane(i) for i in range(max(1, settings.MODELMGR_WEB_THREADS))]

    async def read_body(self, receive):
        take_body_file = getattr(receive, "take_body_file", None)
        body_file = take_body_file() if take_body_file is not None else None
        if body_file is None:
            return await super().read_body(receive)
        return body_file

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not self._view_is_async(scope):
            await self._handle_in_one_hop(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    @staticmethod
    def _view_is_async(scope) -> bool:
        """Whether the URL's view is a coroutine function (anything unresolved is sync:
        Django's 404 handling)."""
        path = scope["path"]
        root = get_script_prefix(scope).rstrip("/")
        if root and path.startswith(root):
            path = path[len(root) :]
        try:
            match = resolve(path or "/")
        except Resolver404:
            return False
        return iscoroutinefunction(match.func)

    def shutdown(self) -> None:
        """Close each lane's database connections and stop its thread (tests; exit)."""
        from django.db import connections

        for lane in self._lanes:
            lane.executor.submit(connections.close_all).result()
            lane.executor.shutdown()

    def _pick_lane(self) -> _Lane:
        return min(self._lanes, key=lambda lane: lane.busy)

    async def _handle_in_one_hop(self, scope, receive, send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        lane = self._pick_lane()
        lane.busy += 1
        try:
            response = await lane.run(self._respond, scope, body_file)
            if not response.streaming:
                await self.send_response(response, send)  # closed already, in _respond
                return
            try:
                await self._send_streamed(response, send, receive, lane)
            finally:
                await lane.run(response.close)
        finally:
            lane.busy -= 1
            body_file.close()

    def _respond(self, scope, body_file):
        """Everything sync of one request, on its lane: Django's handle(), minus hops."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            response = error_response
        else:
            response = self._sync_chain.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            # The body is built: closing now (request_finished, which returns the
            # database connection) saves the hop Django makes after sending.
            response.close()
        return response

    async def _send_streamed(self, response, send, receive, lane: _Lane) -> None:
        """Django's send_response for a streamed body, reading sync chunks on ``lane``;
        a client that hangs up stops the stream, as in Django's own path."""
        sending = asyncio.create_task(self._stream(response, send, lane))
        listening = asyncio.create_task(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait({sending, listening}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (listening, sending):
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                    await task

    async def _stream(self, response, send, lane: _Lane) -> None:
        headers = [
            (
                bytes(h.encode("ascii") if isinstance(h, str) else h),
                bytes(v.encode("latin1") if isinstance(v, str) else v),
            )
            for h, v in response.items()
        ]
        for cookie in response.cookies.values():
            headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        if response.is_async:
            async for part in response.streaming_content:
                await self._send_part(part, send)
        else:
            chunks = iter(response.streaming_content)
            while (part := await lane.run(next, chunks, _DONE)) is not _DONE:
                await self._send_part(part, send)
        await send({"type": "http.response.body", "body": b""})

    async def _send_part(self, part, send) -> None:
        for chunk, _ in self.chunk_bytes(part):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


def get_asgi_application() -> BodyFileASGIHandler:
    """django.core.asgi.get_asgi_application, with the handler above."""
    django.setup(set_prefix=False)
    return BodyFileASGIHandler()
