"""Stream one http(s) URL into a partial file, resuming with Range + If-Range when it can.

Nothing here touches the database: the runner passes callbacks that persist what the
server said (validators, size, file name) and the progress, and that stop the transfer
when the job is cancelled. Every connection goes through the network guard, redirects
included, and is pinned to the address the guard checked.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import certifi
import httpx
from django.conf import settings

from modelmgr.imports import netguard
from modelmgr.imports.names import filename_for
from modelmgr.imports.partial import PartialFile
from modelmgr.storage import chunk_size

USER_AGENT = "modelmgr-import/1"
REDIRECTS = (301, 302, 303, 307, 308)
# Worth another attempt later: the server or the path to it is having a bad moment.
TRANSIENT_STATUSES = (408, 425, 429, 500, 502, 503, 504)
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


class FetchError(Exception):
    """A transfer that did not complete. ``transient``: a later attempt may succeed."""

    def __init__(self, message: str, *, transient: bool):
        super().__init__(message)
        self.message = message
        self.transient = transient


@dataclass
class Source:
    """What the server told us about the file; persisted on the job between attempts."""

    etag: str = ""
    last_modified: str = ""
    filename: str = ""
    total: int | None = None

    @property
    def validator(self) -> str:
        return self.etag or self.last_modified


def ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    if settings.MODELMGR_IMPORT_CA_BUNDLE:
        context.load_verify_locations(cafile=settings.MODELMGR_IMPORT_CA_BUNDLE)
    return context


def _client() -> httpx.Client:
    timeout = httpx.Timeout(
        settings.MODELMGR_IMPORT_READ_TIMEOUT, connect=settings.MODELMGR_IMPORT_CONNECT_TIMEOUT
    )
    # trust_env=False: an environment proxy would connect somewhere the guard never
    # checked, and .netrc credentials must not leak to arbitrary hosts.
    return httpx.Client(
        verify=ssl_context(), trust_env=False, follow_redirects=False, timeout=timeout
    )


@contextmanager
def open_guarded(url: str, headers: dict[str, str]) -> Iterator[tuple[httpx.Response, str]]:
    """GET ``url``, following redirects by hand; yield (response, final url).

    1. Guard the URL (scheme, allow-list, resolved addresses) and pin the connection to
       the checked address, sending the original Host header and TLS server name.
    2. On a redirect, guard the Location the same way; refuse an https -> http
       downgrade and more than MODELMGR_IMPORT_MAX_REDIRECTS hops.
    """
    max_redirects = settings.MODELMGR_IMPORT_MAX_REDIRECTS
    current = url
    with _client() as client:
        for _hop in range(max_redirects + 1):
            guarded = _guard(current)
            request = client.build_request(
                "GET",
                guarded.pinned_url,
                headers={**headers, "Host": guarded.host_header},
                extensions={"sni_hostname": guarded.host},
            )
            try:
                response = client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise _transport_error(exc, guarded.host) from None
            try:
                location = response.headers.get("location")
                if response.status_code not in REDIRECTS or not location:
                    yield response, current
                    return
                following = guarded.url.join(location)
            finally:
                response.close()
            if guarded.url.scheme == "https" and following.scheme == "http":
                raise FetchError(
                    f"{guarded.host} redirected to {_shown(following)}: a redirect from "
                    "https to http is refused",
                    transient=False,
                )
            current = str(following)
        raise FetchError(
            f"more than {max_redirects} redirects starting at {_shown(httpx.URL(url))}",
            transient=False,
        )


def _guard(url: str) -> netguard.GuardedURL:
    try:
        return netguard.guard_url(url)
    except netguard.HostUnresolved as exc:
        raise FetchError(exc.detail, transient=True) from None
    except netguard.ImportRefused as exc:
        raise FetchError(exc.detail, transient=False) from None
    except netguard.BadImportURL as exc:
        raise FetchError(f"a redirect led to a bad URL: {exc.detail}", transient=False) from None


def _transport_error(exc: httpx.HTTPError, host: str) -> FetchError:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
        return FetchError(f"TLS certificate of {host} is not trusted: {text}", transient=False)
    return FetchError(f"network error talking to {host}: {text}", transient=True)


def _shown(url: httpx.URL) -> str:
    """A URL without its query string (pre-signed links carry credentials there)."""
    return str(url.copy_with(query=None, fragment=None))


def fetch_to_partial(
    url: str,
    partial: PartialFile,
    source: Source,
    *,
    limit: int,
    on_response: Callable[[Source, bool], None],
    on_progress: Callable[[int], None],
) -> Source:
    """Download ``url`` into ``partial``, continuing from the bytes already there.

    1. With bytes on disk and a validator (strong ETag or Last-Modified) from an earlier
       response, ask for ``Range: bytes=N-`` with ``If-Range``; without a validator a
       resume could splice two different files, so start again from zero.
    2. 206 from offset N: append. 200: the file changed or the server ignores ranges:
       start again from zero. 416 with the full size on disk: already complete.
    3. Refuse a declared size over ``limit`` before reading the body; count while
       streaming and stop past the limit when no size was declared.
    4. ``on_response`` persists what the server said before the body is read, so an
       interruption can resume; ``on_progress`` sees every chunk and may raise to stop.
    5. A body shorter than declared is a transient error: the next attempt resumes.
    """
    for _pass in range(2):
        offset = partial.size
        resume = offset > 0 and bool(source.validator)
        if offset and not resume:
            partial.reset()
            offset = 0
        headers = {"Accept-Encoding": "identity", "User-Agent": USER_AGENT}
        if resume:
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = source.validator
        with open_guarded(url, headers) as (response, final_url):
            status = response.status_code
            if resume and status == 416:
                if _unsatisfied_total(response) == offset:
                    source.total = offset
                    on_response(source, True)
                    return source
                partial.reset()
                continue
            if status == 206 and resume:
                start, total = _content_range(response)
                if start != offset or _validator_changed(source, response):
                    partial.reset()
                    continue
            elif status == 200:
                if offset:
                    partial.reset()
                total = _content_length(response)
            else:
                raise _status_error(response, final_url)
            _remember(source, response, url, final_url, total)
            _check_limit(total, limit)
            on_response(source, status == 206)
            _stream(response, partial, limit, on_progress)
            if source.total is not None and partial.size != source.total:
                raise FetchError(
                    f"the connection closed after {partial.size} of {source.total} bytes",
                    transient=partial.size < source.total,
                )
            if source.total is None:
                source.total = partial.size
            return source
    raise FetchError("the server keeps answering a different range than requested", transient=True)


def _stream(
    response: httpx.Response, partial: PartialFile, limit: int, on_progress: Callable[[int], None]
) -> None:
    step = chunk_size()
    try:
        for raw in response.iter_raw():
            for start in range(0, len(raw), step):
                piece = raw[start : start + step]
                if partial.size + len(piece) > limit:
                    raise FetchError(_too_large(limit, None), transient=False)
                partial.write(piece)
                on_progress(partial.size)
    except httpx.HTTPError as exc:
        raise FetchError(
            f"the download broke off after {partial.size} bytes: {exc or type(exc).__name__}",
            transient=True,
        ) from None


def _too_large(limit: int, size: int | None) -> str:
    what = f"the file is {size} bytes" if size is not None else "the file is larger"
    return f"{what}, over the import limit of {limit} bytes (MODELMGR_IMPORT_MAX_BYTES)"


def _check_limit(total: int | None, limit: int) -> None:
    if total is not None and total > limit:
        raise FetchError(_too_large(limit, total), transient=False)


def _content_length(response: httpx.Response) -> int | None:
    raw = response.headers.get("content-length")
    return int(raw) if raw and raw.strip().isdigit() else None


def _content_range(response: httpx.Response) -> tuple[int, int | None]:
    match = _CONTENT_RANGE_RE.match(response.headers.get("content-range", ""))
    if not match:
        raise FetchError("the server answered 206 without a usable Content-Range", transient=True)
    total = match.group(3)
    return int(match.group(1)), (None if total == "*" else int(total))


def _unsatisfied_total(response: httpx.Response) -> int | None:
    match = re.match(r"^\s*bytes\s+\*/(\d+)\s*$", response.headers.get("content-range", ""))
    return int(match.group(1)) if match else None


def _strong_etag(response: httpx.Response) -> str:
    etag = response.headers.get("etag", "").strip()
    # A weak ETag (W/"...") must not be used in If-Range (RFC 9110 13.1.5).
    return "" if etag.startswith("W/") else etag


def _validator_changed(source: Source, response: httpx.Response) -> bool:
    etag = _strong_etag(response)
    return bool(source.etag and etag and etag != source.etag)


def _remember(
    source: Source, response: httpx.Response, url: str, final_url: str, total: int | None
) -> None:
    source.etag = _strong_etag(response)
    source.last_modified = response.headers.get("last-modified", "").strip()[:64]
    source.total = total
    if not source.filename:
        source.filename = filename_for(
            response.headers.get("content-disposition", ""), url, final_url
        )


def _status_error(response: httpx.Response, url: str) -> FetchError:
    status = response.status_code
    reason = response.reason_phrase or ""
    return FetchError(
        f"{_shown(httpx.URL(url))} answered {status} {reason}".strip(),
        transient=status in TRANSIENT_STATUSES,
    )
