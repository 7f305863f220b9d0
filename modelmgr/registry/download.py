"""Stream stored files out: one file with HTTP Range support, or a whole version as a zip.

Neither path holds a file in memory: bytes flow from the store in chunks
(settings.MODELMGR_STREAM_CHUNK_BYTES) straight into the response.

Neither path serves bytes that no longer match their sha256 as a whole, successful
download: the blob is hashed as it streams and a mismatch ends the response early (the
web process then closes the connection, so the client sees a short body), and a
version that verify has put in ``error`` is refused with 409 before the first byte. A
Range reads only the blocks that cover it and checks each against its recorded digest
(``modelmgr.blocks``); a blob with no digests yet is hashed whole, which records them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header

from modelmgr.blocks import BlockHasher, blocks_of, record_from_stream
from modelmgr.exceptions import IntegrityFailure
from modelmgr.models import ArtifactFile, BlobBlocks, ModelVersion, VersionStatus
from modelmgr.storage import content_store

log = logging.getLogger(__name__)


class _AsyncChunks:
    """Serves a blocking chunk iterator to an ASGI server one chunk at a time.

    Django's ASGI handler would otherwise turn a sync iterator into a list first, holding
    the whole file in memory. Each chunk is read in a worker thread; ``close`` (called
    by the response when it finishes or the client goes away) closes the iterator and
    with it the open blob.
    """

    _END = object()

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> _AsyncChunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await sync_to_async(next, thread_sensitive=False)(self._chunks, self._END)
        if chunk is self._END:
            raise StopAsyncIteration
        return chunk

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is None:
            return
        try:
            close()
        except ValueError:
            pass  # a read is still running in its thread; the generator closes when collected


def streamed(request: HttpRequest | None, chunks: Iterator[bytes]):
    """The chunk iterator in the form the serving handler streams without buffering."""
    if isinstance(request, ASGIRequest):
        return _AsyncChunks(chunks)
    return chunks


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in HTTP

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range asked for, or None to send the whole file.

    Follows RFC 9110 section 14: a malformed header, another unit, or several ranges are
    ignored (the whole file is a valid answer); a well-formed range that starts past
    the end raises Unsatisfiable (416).
    """
    if not header or not header.strip().lower().startswith("bytes="):
        return None
    spec = header.strip()[len("bytes=") :].strip()
    if "," in spec or "-" not in spec:
        return None
    first, _, last = (part.strip() for part in spec.partition("-"))
    if not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable
    end = int(last) if last else size - 1
    return ByteRange(start, min(end, size - 1))


def _etag(sha256: str) -> str:
    return f'"{sha256}"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {value.strip().removeprefix("W/") for value in header.split(",")}
    return "*" in candidates or etag in candidates


def refuse_if_in_error(version: ModelVersion) -> None:
    """409 for a version whose stored bytes a verify found wrong (or that failed ingest)."""
    if version.status == VersionStatus.ERROR:
        reason = f": {version.error}" if version.error else ""
        raise IntegrityFailure(f"{version.ref} is in error and is not served for download{reason}")


def verified_chunks(
    artifact: ArtifactFile,
    start: int = 0,
    end: int | None = None,
    blocks: BlobBlocks | None = None,
) -> Iterator[bytes]:
    """The bytes [start, end] of a stored file, checked as they stream.

    With ``blocks`` (its recorded block digests), only the blocks covering the range are
    read and each is checked against its digest. Otherwise the whole blob is read and
    hashed, also around a range; for a range the block digests are computed in the same
    pass and recorded when the blob is intact, so the next range is cheap. Either way
    the last chunk is held back until the check is done: on a mismatch IntegrityFailure
    is raised instead, so the client never receives the complete body.
    """
    end = artifact.size - 1 if end is None else end
    if blocks is not None:
        return _checked_by_block(artifact, start, end, blocks)
    return _checked_whole(artifact, start, end)


def _checked_whole(artifact: ArtifactFile, start: int, end: int) -> Iterator[bytes]:
    digest = hashlib.sha256()
    partial = (start, end) != (0, artifact.size - 1)
    block_digests = BlockHasher(settings.MODELMGR_RANGE_BLOCK_BYTES) if partial else None
    read = _Tally()
    chunks = _fed(content_store().iter_chunks(artifact.sha256), digest, block_digests, read)

    def check() -> None:
        if digest.hexdigest() != artifact.sha256 or read.total != artifact.size:
            log.error("corrupt blob %s for %r while serving it", artifact.sha256, artifact.path)
            raise IntegrityFailure(f"{artifact.path!r} no longer matches its sha256")
        if block_digests is not None:
            record_from_stream(artifact.sha256, block_digests.block_bytes, block_digests.digests())

    return _last_held_until(check, _clipped(chunks, 0, start, end))


def _checked_by_block(
    artifact: ArtifactFile, start: int, end: int, blocks: BlobBlocks
) -> Iterator[bytes]:
    """One read of the blocks that cover [start, end] (a ranged GET on S3), each hashed
    as it passes and compared with its digest as soon as it is complete."""
    first, last = start // blocks.block_bytes, end // blocks.block_bytes
    read_start = first * blocks.block_bytes
    read_end = min((last + 1) * blocks.block_bytes, artifact.size) - 1

    def check_block(index: int, digest: bytes) -> None:
        if digest != blocks.digest(first + index):
            log.error("block %d of %r no longer matches", first + index, artifact.path)
            raise IntegrityFailure(f"{artifact.path!r} no longer matches its sha256")

    hasher = BlockHasher(blocks.block_bytes, on_block=check_block)
    read = _Tally()
    chunks = _fed(content_store().iter_chunks(artifact.sha256, read_start, read_end), hasher, read)

    def check() -> None:
        if read.total != read_end - read_start + 1:
            log.error("short blob %s for %r while serving a range", artifact.sha256, artifact.path)
            raise IntegrityFailure(f"{artifact.path!r} is shorter in the store than recorded")
        hasher.digests()  # checks the last block, which may be short

    return _last_held_until(check, _clipped(chunks, read_start, start, end))


class _Tally:
    """Counts the bytes fed to it, beside the hashers."""

    def __init__(self) -> None:
        self.total = 0

    def update(self, data: bytes) -> None:
        self.total += len(data)


def _fed(chunks: Iterator[bytes], *sinks) -> Iterator[bytes]:
    """The chunks, each first fed to every sink (hashers, a tally; None is skipped)."""
    sinks = [sink for sink in sinks if sink is not None]
    for chunk in chunks:
        for sink in sinks:
            sink.update(chunk)
        yield chunk


def _clipped(chunks: Iterator[bytes], offset: int, start: int, end: int) -> Iterator[bytes]:
    """The parts of ``chunks`` (starting at byte ``offset``) inside [start, end]. Every
    chunk is still read, so the hashers fed by ``chunks`` see all of them."""
    position = offset
    for chunk in chunks:
        low, high = max(start - position, 0), min(end + 1 - position, len(chunk))
        position += len(chunk)
        if low < high:
            yield chunk if (low, high) == (0, len(chunk)) else chunk[low:high]


def _last_held_until(check, pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Yield every piece but the last, run ``check`` once all are read, then the last: a
    failed check leaves the client without the complete body."""
    held: bytes | None = None
    for piece in pieces:
        if held is not None:
            yield held
        held = piece
    check()
    if held is not None:
        yield held


def file_response(request: HttpRequest, artifact: ArtifactFile) -> HttpResponse:
    """200 with the whole file, 206 with one range, 304 when the ETag matches, or 416."""
    refuse_if_in_error(artifact.version)
    store = content_store()
    if not store.exists(artifact.sha256):
        raise IntegrityFailure(f"the bytes of {artifact.path!r} are missing from the store")
    etag = _etag(artifact.sha256)
    common = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition_header(True, posixpath.basename(artifact.path)),
    }
    if _etag_matches(request.headers.get("If-None-Match"), etag):
        response = HttpResponse(status=304)
        for key, value in common.items():
            response[key] = value
        return response
    range_header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        range_header = None  # the client's partial copy is stale: send everything
    try:
        wanted = parse_range(range_header, artifact.size)
    except Unsatisfiable:
        body = json.dumps(
            {
                "detail": f"range {range_header!r} is outside {artifact.path!r} "
                f"({artifact.size} bytes)"
            }
        )
        response = HttpResponse(body, status=416, content_type="application/json")
        response["Content-Range"] = f"bytes */{artifact.size}"
        response["Accept-Ranges"] = "bytes"
        return response
    if wanted is None:
        response = StreamingHttpResponse(
            streamed(request, verified_chunks(artifact)),
            content_type=artifact.content_type,
        )
        response["Content-Length"] = str(artifact.size)
    else:
        # Looked up here, in the request's thread: the chunks are read in a pool thread.
        blocks = blocks_of(artifact.sha256, artifact.size)
        response = StreamingHttpResponse(
            streamed(request, verified_chunks(artifact, wanted.start, wanted.end, blocks)),
            status=206,
            content_type=artifact.content_type,
        )
        response["Content-Length"] = str(wanted.length)
        response["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{artifact.size}"
    for key, value in common.items():
        response[key] = value
    return response


class _Sink:
    """A write-only file for zipfile that hands the bytes written so far to a generator."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def zip_chunks(version: ModelVersion, files: list[ArtifactFile] | None = None) -> Iterator[bytes]:
    """Yield a ZIP (stored, zip64 where needed) of the version's files, chunk by chunk.

    1. zipfile writes into a sink it cannot seek, so it emits data descriptors
       after each entry instead of seeking back to patch headers.
    2. Every chunk read from the store is written to the entry and yielded at once.
    3. Each file's sha256 is checked as it streams; a corrupt blob aborts the stream
       (the client gets a truncated zip, never silently wrong bytes).
    """
    store = content_store()
    sink = _Sink()
    stamp = version.created_at.timetuple()[:6]
    if files is None:
        files = list(version.files.order_by("path"))
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for artifact in files:
            info = zipfile.ZipInfo(artifact.path, date_time=stamp)
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = artifact.size
            info.external_attr = 0o644 << 16
            digest = hashlib.sha256()
            with zf.open(info, mode="w") as entry:
                for chunk in store.iter_chunks(artifact.sha256):
                    digest.update(chunk)
                    entry.write(chunk)
                    yield sink.drain()
            if digest.hexdigest() != artifact.sha256:
                log.error("corrupt blob %s for %s while zipping", artifact.sha256, version.ref)
                raise IntegrityFailure(
                    f"{artifact.path!r} of {version.ref} no longer matches its sha256"
                )
            yield sink.drain()
    yield sink.drain()


def zip_response(request: HttpRequest | None, version: ModelVersion) -> StreamingHttpResponse:
    refuse_if_in_error(version)
    store = content_store()
    # Read the rows now: the stream may run in another thread, away from this request's
    # database connection.
    files = list(version.files.order_by("path"))
    missing = [f.path for f in files if not store.exists(f.sha256)]
    if missing:
        raise IntegrityFailure(
            f"the bytes of {', '.join(missing)} ({version.ref}) are missing from the store"
        )
    chunks = (chunk for chunk in zip_chunks(version, files) if chunk)
    response = StreamingHttpResponse(streamed(request, chunks), content_type="application/zip")
    response["Content-Disposition"] = content_disposition_header(
        True, f"{version.model.name}-{version.version}.zip"
    )
    return response
