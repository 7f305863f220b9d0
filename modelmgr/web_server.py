"""The web process: daphne, with request bodies streamed from disk instead of memory.

Daphne reads a request's whole body (already spooled to a temp file by twisted) into
its unbounded asyncio input queue in one synchronous loop before the application can
consume any of it (django/daphne#483, open), so a 1 GB model upload would cost 1 GB of
RSS. ``FileBackedBodyQueue`` keeps only (offset, length) per chunk and reads the bytes
back from twisted's temp file when Django asks for them: memory stays flat.

Twisted itself, before daphne sees the request, parses a multipart POST body into
``request.args`` by reading the whole body into memory and handing it to the email
parser, which copies it several times: a 1 GB upload cost 13 GB of RSS. daphne never
reads ``args`` (Django parses the body itself), so ``protocol_connected`` turns that
parsing off for every request.

twisted also spools the whole body to that temp file before daphne (or our ASGI-level
cap, ``modelmgr.asgi_limits``) sees the request, so the upload cap is enforced here, as
the body arrives: ``_BodyCap`` answers a declared Content-Length over the limit with 413
before reading any of the body, and cuts off a chunked body with 413 once it passes it.

The response side has the mirror problem: daphne writes every body chunk straight into
twisted's unbounded send buffer, so a streamed 1 GB download to a slow client would sit
in this process's memory. ``handle_reply`` below registers a push producer on the
request and, after each chunk, waits until twisted says the socket has drained
(``resumeProducing``): Django's streaming loop then runs at the client's pace.

Run: ``python -m modelmgr.web_server -b 127.0.0.1 -p 8000 modelmgr.asgi:application``
(the same arguments as ``daphne``).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
from functools import partial

# Before daphne.server is imported: it creates the event loop that twisted's reactor runs
# on, and uvloop's loop cost the predict path ~20% less CPU than asyncio's own
# (benchmarks/RESULTS.md). The loop is an implementation detail: asyncio's API is unchanged.
try:
    import uvloop
except ImportError:  # not on every platform (uvicorn[standard] skips it on Windows)
    uvloop = None
if uvloop is not None:
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

from daphne.cli import CommandLineInterface  # noqa: E402
from daphne.server import Server  # noqa: E402
from django.conf import settings  # noqa: E402
from twisted.web import http  # noqa: E402
from twisted.web.http_headers import Headers  # noqa: E402

from modelmgr.asgi_limits import oversize_body_json, request_body_limit  # noqa: E402
from modelmgr.ingest.raw_body import EXTENSION as STAGED_BODY  # noqa: E402
from modelmgr.ingest.raw_body import StagedBodyFile, is_raw_upload  # noqa: E402

BODY_CHUNK_BYTES = 1024 * 1024

logger = logging.getLogger(__name__)


class _BodySlice:
    __slots__ = ("offset", "length")

    def __init__(self, offset: int, length: int):
        self.offset = offset
        self.length = length


class FileBackedBodyQueue(asyncio.Queue):
    """An input queue that stores request-body chunks as slices of the request's file.

    It is also the application's ``receive`` callable, and offers the whole body as a
    file of its own (``take_body_file``) so that Django need not copy it into a second
    temporary file (modelmgr.asgi_handler).
    """

    def __init__(self, content_file):
        super().__init__()
        self._content = content_file
        self._body_items_queued = 0
        self._body_complete = False
        self._body_started = False

    def put_nowait(self, item):
        if item.get("type") == "http.request":
            self._body_items_queued += 1
            self._body_complete = not item.get("more_body", False)
            body = item.get("body")
            if body:
                # daphne has just read `body` from the content file: remember where it was.
                item = {**item, "body": _BodySlice(self._content.tell() - len(body), len(body))}
        super().put_nowait(item)

    async def get(self):
        item = await super().get()
        body = item.get("body")
        if item.get("type") == "http.request":
            self._body_started = True
        if isinstance(body, _BodySlice):
            self._content.seek(body.offset)
            item = {**item, "body": self._content.read(body.length)}
        return item

    async def __call__(self):
        return await self.get()

    def take_body_file(self):
        """The whole body as a new file positioned at 0, its messages taken off the queue.

        None when that is not possible: a small body twisted kept in memory (no file
        descriptor), or one a reader has already started on.
        """
        if self._body_started or not self._body_complete:
            return None
        try:
            fd = self._content.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
        self._content.flush()
        # daphne queued every body message before the application ran, ahead of any
        # disconnect message: these are exactly the first ones in the queue.
        for _ in range(self._body_items_queued):
            self.get_nowait()
        self._body_started = True
        # A descriptor of its own: Django closes the file when the request ends,
        # twisted closes its own when the connection does.
        body_file = os.fdopen(os.dup(fd), "rb")
        body_file.seek(0)
        return body_file


class _SendGate:
    """A twisted IPushProducer that turns pause/resume into an awaitable asyncio event.

    twisted's reactor runs on daphne's asyncio loop, so the callbacks and the waiter
    share one thread.
    """

    def __init__(self):
        self._open = asyncio.Event()
        self._open.set()

    def pauseProducing(self):  # the socket's send buffer is full
        self._open.clear()

    def resumeProducing(self):  # it drained
        self._open.set()

    def stopProducing(self):  # the connection is gone: never leave a sender waiting
        self._open.set()

    async def wait(self) -> None:
        await self._open.wait()


class _BodyCap:
    """Refuses a request body over the upload limit while twisted receives it (413).

    twisted writes a body to a temporary file as it arrives and hands the request to
    daphne only once all of it is there: a cap checked by the application comes after
    the whole body is on disk. Installed on each request as twisted creates it (before
    its headers are parsed), this wraps three of the hooks twisted's channel calls on a
    request (documented as not for users: Twisted is pinned in pyproject.toml):

    1. ``gotLength`` (all headers are in): a declared Content-Length over the limit is
       answered with 413 and the connection closed, before any of the body is read and
       before a temporary file is made for it.
    2. ``handleContentChunk`` (each piece of body): the bytes are counted, which is the
       only check a chunked body (no declared length) can have; past the limit its
       temporary file is closed at once (which frees it) and the same 413 is sent.
    3. ``requestReceived`` (the body is complete): a refused request never reaches
       daphne, even when the end of a chunked body was already in twisted's buffer.
       The hooks are removed here, so a request does not hold itself in a cycle.
    """

    _HOOKS = ("gotLength", "handleContentChunk", "requestReceived")

    def __init__(self, request: http.Request, limit: int):
        self._request = request
        self._limit = limit
        self._received = 0
        self._refused = False
        request.gotLength = self.got_length
        request.handleContentChunk = self.content_chunk
        request.requestReceived = self.request_received

    def got_length(self, length: int | None) -> None:
        raw_upload = _is_raw_upload(self._request)
        if raw_upload:  # the body is the file: no multipart allowance
            self._limit = settings.MODELMGR_MAX_UPLOAD_BYTES
        if length is not None and length > self._limit:
            self._request.content = io.BytesIO()  # nothing of the body is kept
            # twisted answers "Expect: 100-continue" right after this hook: the 413 is
            # the answer, and the client need not send the body at all.
            self._request.requestHeaders.removeHeader(b"Expect")
            self._refuse(oversize_body_json(length))
            return
        if raw_upload:
            _stage_as_it_arrives(self._request)
            return
        type(self._request).gotLength(self._request, length)

    def content_chunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._limit:
            self._request.content.close()
            self._refuse(oversize_body_json(self._received, at_least=True))
            return
        type(self._request).handleContentChunk(self._request, data)

    def request_received(self, command: bytes, path: bytes, version: bytes) -> None:
        for hook in self._HOOKS:
            self._request.__dict__.pop(hook, None)
        if self._refused:
            return
        content = self._request.content
        if isinstance(content, StagedBodyFile):
            content.finish()
        self._request.requestReceived(command, path, version)

    def _refuse(self, body: bytes) -> None:
        """Send the 413 straight to the socket and close the connection.

        Not through the request's own response methods: twisted is still parsing this
        request, and finishing it would make the channel read the next one.
        """
        self._refused = True
        channel = self._request.channel
        if channel is None or channel.transport is None:
            return
        head = b"HTTP/1.1 413 %s\r\n" % http.RESPONSES[http.REQUEST_ENTITY_TOO_LARGE]
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        head += b"Connection: close\r\n\r\n"
        channel.transport.write(head + body)
        channel.loseConnection()
        logger.info("refused an oversize request body: %s", body.decode())


def _is_raw_upload(request: http.Request) -> bool:
    """A raw-body file upload (modelmgr.ingest.raw_body)? Asked when all headers are
    in, before twisted has set the request's method and path: the channel has them
    (``_command``/``_path``; Twisted is pinned in pyproject.toml)."""
    channel = request.channel
    method = getattr(channel, "_command", None)
    path = getattr(channel, "_path", None)
    return bool(method and path) and is_raw_upload(method, path)


def _stage_as_it_arrives(request: http.Request) -> None:
    """The body goes straight into a staging file, hashed as it comes, in place of
    twisted's temporary file; reads from the socket take up to 1 MiB at a time instead
    of twisted's 64 KiB, so the reactor handles a sixteenth of the pieces."""
    request.content = StagedBodyFile()
    transport = getattr(request.channel, "transport", None)
    if transport is not None and hasattr(transport, "bufferSize"):
        transport.bufferSize = BODY_CHUNK_BYTES


class StreamingBodyServer(Server):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("request_buffer_size", BODY_CHUNK_BYTES)
        super().__init__(*args, **kwargs)
        # Imports must never fetch from this server itself (modelmgr.imports.addresses).
        from modelmgr.imports.addresses import note_own_listener

        for endpoint in self.endpoints:
            port = re.search(r"(?:^|:)port=(\d+)", endpoint)
            if port is not None:
                note_own_listener(int(port.group(1)), "the web process")

    def protocol_connected(self, protocol):
        if isinstance(protocol, http.Request):
            # Twisted's own form parsing (see the module docstring); the attribute is
            # twisted's switch for it (Twisted is pinned in pyproject.toml).
            protocol._parsePOSTFormSubmission = False
            _BodyCap(protocol, request_body_limit())
            protocol.handle_exception = partial(_abort_after_exception, protocol)
        super().protocol_connected(protocol)

    def create_application(self, protocol, scope):
        """daphne's create_application, with a file-backed queue for HTTP request bodies."""
        assert "application_instance" not in self.connections[protocol]
        content = getattr(protocol, "content", None) if scope.get("type") == "http" else None
        staged_body = content if isinstance(content, StagedBodyFile) else None
        if staged_body is not None:  # the body is in staging already: the queue gets b""
            scope.setdefault("extensions", {})[STAGED_BODY] = staged_body
            input_queue = asyncio.Queue()
        elif content is not None:
            input_queue = FileBackedBodyQueue(content)
        else:
            input_queue = asyncio.Queue()
        scope.setdefault("asgi", {"version": "3.0"})
        # A FileBackedBodyQueue is itself the receive callable (see take_body_file).
        receive = input_queue if isinstance(input_queue, FileBackedBodyQueue) else input_queue.get
        application_instance = self.application(
            scope=scope, receive=receive, send=partial(self.handle_reply, protocol)
        )
        if protocol not in self.connections:
            return None
        future = asyncio.ensure_future(application_instance, loop=asyncio.get_event_loop())
        if staged_body is not None:
            # Whatever the application did, a staged file it did not commit goes.
            future.add_done_callback(lambda _: staged_body.discard())
        self.connections[protocol]["application_instance"] = future
        return input_queue

    async def handle_reply(self, protocol, message):
        """daphne's handle_reply, then wait for the client to take the bytes."""
        last_body = message.get("type") == "http.response.body" and not message.get("more_body")
        if last_body:
            self._release_gate(protocol)  # twisted wants producers gone before finish()
        await super().handle_reply(protocol, message)
        if message.get("type") == "http.response.body" and not last_body:
            await self._drained(protocol)

    async def _drained(self, protocol) -> None:
        connection = self.connections.get(protocol)
        if not connection or connection.get("disconnected") or not _writable(protocol):
            return
        gate = connection.get("send_gate")
        if gate is None:
            gate = connection["send_gate"] = _SendGate()
            protocol.registerProducer(gate, True)
        await gate.wait()

    def protocol_disconnected(self, protocol):
        super().protocol_disconnected(protocol)
        gate = self.connections[protocol].get("send_gate")
        if gate is not None:
            gate.stopProducing()  # the sender is waiting on a socket that is gone

    def _release_gate(self, protocol) -> None:
        connection = self.connections.get(protocol) or {}
        gate = connection.pop("send_gate", None)
        if gate is not None and _writable(protocol) and protocol.producer is gate:
            protocol.unregisterProducer()


def _abort_after_exception(protocol, exception: BaseException) -> None:
    """daphne's handle_exception, for a response whose head may already be sent.

    daphne answers an application's exception with a 500 page, which it cannot do once
    the response has started (a streamed download whose stored bytes turn out corrupt):
    its handle_reply raised "response already started" inside daphne's periodic
    application checker, which stopped that checker for good, and the client waited
    forever for the rest of a body that never came.

    1. Nothing started: daphne's own error page.
    2. Started, but twisted has not written the head yet (the error came before the
       first body byte): the head is replaced by a JSON error, the domain exception's
       status and detail (modelmgr.exceptions) or a plain 500.
    3. Bytes are out: closing the connection is the only honest answer. The client
       sees a truncated transfer (a short Content-Length body, or a chunked body
       without its last chunk), never a whole one.
    """
    if not getattr(protocol, "_response_started", False):
        type(protocol).handle_exception(protocol, exception)
        return
    channel = getattr(protocol, "channel", None)
    if protocol.finished or channel is None:
        return
    if not protocol.startedWriting:
        status = getattr(exception, "status", 500)
        detail = getattr(exception, "detail", None) or "internal error"
        body = json.dumps({"detail": detail}).encode()
        protocol.responseHeaders = Headers()
        protocol.setResponseCode(status)
        protocol.setHeader(b"Content-Type", b"application/json")
        protocol.setHeader(b"Content-Length", b"%d" % len(body))
        protocol.setHeader(b"Connection", b"close")
        http.Request.write(protocol, body)
        protocol.finish()
        logger.error("answered %d after an error before the first byte: %s", status, detail)
        return
    logger.error("closed a response mid-stream after an error: %s", exception)
    if channel.transport is not None:
        channel.transport.abortConnection()


def _writable(protocol) -> bool:
    finished = getattr(protocol, "finished", True)
    return not finished and getattr(protocol, "channel", None) is not None


class StreamingBodyCli(CommandLineInterface):
    server_class = StreamingBodyServer


def main() -> None:
    StreamingBodyCli.entrypoint()


if __name__ == "__main__":
    main()
