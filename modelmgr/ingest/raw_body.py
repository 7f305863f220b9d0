"""A request body that is one file: staged and hashed as it arrives, never read back.

``PUT /api/v1/models/{name}/versions/{version}/files/{path}`` sends a version's file as
the raw request body (no multipart framing). Under the real web process
(modelmgr.web_server) twisted writes such a body straight into a staging file through
``StagedBodyFile`` instead of its own temporary file, hashing it in the same pass; daphne
then hands the application an empty body and the staged blob in
``scope["extensions"][EXTENSION]``. A 1 GB file is written once, hashed once, and
committed into the store with one rename: no temporary file read back by daphne, no
second spool in Django, no multipart parser scanning every byte for a boundary.

Under any other server (Django's test client, another ASGI server) ``staged_body``
stages the body itself from the request stream: the same result, one more copy.
"""

from __future__ import annotations

import base64
import binascii
import re

from django.conf import settings
from django.http import HttpRequest

from modelmgr.exceptions import ModelmgrError
from modelmgr.storage import StagedBlob, StagingWriter, stage_file

EXTENSION = "modelmgr.staged_body"
# The route's path (modelmgr.api.versions: PUT ONE + "/files/{path}"), for the server,
# which must decide before the body arrives.
RAW_UPLOAD_PATH = re.compile(rb"^/api/v1/models/[^/?]+/versions/[^/?]+/files/[^?]+")


# Imported by the web server before Django's apps are ready: no models here.


class StagingFailed(ModelmgrError):
    status = 507


class BadDigest(ModelmgrError):
    status = 422


class DigestMismatch(ModelmgrError):
    status = 400


def is_raw_upload(method: bytes, path: bytes) -> bool:
    return method.upper() == b"PUT" and RAW_UPLOAD_PATH.match(path) is not None


class StagedBodyFile:
    """twisted's ``request.content`` for a raw upload: a pipelined StagingWriter.

    twisted writes each received piece here, ``tell``\\ s the length and seeks back once
    the body is complete; daphne then reads the body back to queue it for the
    application, and gets nothing (``read`` answers ``b""``): the application finds the
    staged file in the scope instead. A write error (a full disk) is kept and reported
    by the route; the reactor never sees it. ``close`` (twisted's, when the connection
    is lost) removes an unfinished file; a finished one belongs to the application.
    """

    def __init__(self) -> None:
        self._writer = StagingWriter(pipelined=True)
        self.staged: StagedBlob | None = None
        self.error: str | None = None
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            self._writer.write(data)
        except OSError as exc:
            self._fail(exc)

    def finish(self) -> None:
        """The whole body is in: wait for the hash, keep the staged blob."""
        if self.error is not None or self.staged is not None:
            return
        try:
            self.staged = self._writer.finish()
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.error = f"could not stage the upload: {exc}"
        self._writer.abort()

    def tell(self) -> int:
        return self._writer.size

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        if self.staged is None and self.error is None:
            self._writer.abort()
        self.closed = True

    def discard(self) -> None:
        """Remove the staged file if the request did not commit it (it moved away)."""
        if self.staged is not None:
            self.staged.discard()


def staged_body(request: HttpRequest, *, expected: str | None = None) -> StagedBlob:
    """The request's body as a staged, hashed blob: the server's, or staged here. With
    ``expected`` (expected_sha256), a body that hashes otherwise is removed and refused."""
    server_staged = getattr(request, "scope", {}).get("extensions", {}).get(EXTENSION)
    if server_staged is not None:
        if server_staged.error:
            raise StagingFailed(server_staged.error)
        staged = server_staged.staged
    else:
        staged = stage_file(request, limit=settings.MODELMGR_MAX_UPLOAD_BYTES)
    if expected is not None and staged.sha256 != expected:
        staged.discard()
        raise DigestMismatch(
            f"the body's sha256 is {staged.sha256}, but the request says {expected}: "
            "nothing was stored"
        )
    return staged


def expected_sha256(request: HttpRequest, query_value: str | None) -> str | None:
    """The sha256 the client says the body has: ``?sha256=<hex>`` or RFC 9530's
    ``Content-Digest: sha-256=:<base64>:``; None when it says nothing."""
    if query_value:
        value = query_value.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise BadDigest(f"sha256 must be 64 hex digits, got {query_value!r}")
        return value
    header = request.headers.get("Content-Digest")
    if not header:
        return None
    for item in header.split(","):
        algorithm, _, value = item.strip().partition("=")
        if algorithm.strip().lower() != "sha-256":
            continue
        value = value.strip()
        try:
            digest = base64.b64decode(value.strip(":"), validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if not (value.startswith(":") and value.endswith(":")) or len(digest) != 32:
            raise BadDigest(f"Content-Digest sha-256 must be :<base64 of 32 bytes>:, got {value!r}")
        return digest.hex()
    raise BadDigest("Content-Digest names no sha-256 digest (the only one checked)")
