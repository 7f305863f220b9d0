"""``POST /api/pull``: Ollama's pull, as a URL import (modelmgr.imports).

``model`` is either an http(s) URL (a .zip of a Hugging Face folder, or one model file),
imported as a new version of the model named after the file (``.../tiny-llama.zip`` ->
``tiny-llama``, version numbered as uploads are), or an Ollama ``name[:tag]`` turned
into a URL by MODELMGR_PULL_URL (``{name}`` and ``{tag}``, ``latest`` when none),
imported as ``name@tag`` (the next version for ``latest``). The import's own rules
apply: the allow-list and SSRF rules of modelmgr.imports.netguard, the size limit, the
ingest checks; the job is a normal import (on /imports, audited, owned by the token's
user). The worker runs it at once itself.

With ``stream`` (the default) the answer is NDJSON: ``{"status": "pulling manifest"}``,
then ``{"status": "downloading <file>", "total": N, "completed": M}`` as bytes arrive,
``{"status": "verifying sha256 digest"}``, ``{"status": "writing manifest"}`` and
``{"status": "success", "model": "name@version"}``. ``"stream": false`` answers once at
the end. A refused URL, or a download that fails before the stream began, is a 4xx
``{"error", "detail"}``; a failure after it began is a last ``{"error": ...}`` line (the
``ollama`` client raises it). A failed pull leaves no version, no blob and no partial
file (a transient failure's job is cancelled and removed instead of retried later).
Needs the ``write`` scope. A client that hangs up does not stop the import.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from dataclasses import dataclass

import httpx
from django.conf import settings

from inference.asgi import BadRequest, send_json
from inference.serving.auth import Grant
from inference.serving.generation import watch_disconnect
from inference.worker import db_pass
from modelmgr.audit import actor_label_for
from modelmgr.exceptions import Forbidden, ModelmgrError
from modelmgr.models import ApiToken, DownloadJob, DownloadState

NDJSON = [(b"content-type", b"application/x-ndjson")]
POLL_S = 0.1
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_OLLAMA_NAME = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_-]*)(?::(?P<tag>[A-Za-z0-9][A-Za-z0-9._+-]*))?$"
)


class PullFailed(ModelmgrError):
    status = 422


@dataclass(frozen=True)
class Source:
    url: str
    model_name: str
    version: str  # "" = numbered like uploads


def pull_source(model: str) -> Source:
    """Where ``model`` is pulled from, and as what (see the module docstring)."""
    if model.startswith(("http://", "https://")):
        stem = httpx.URL(model).path.rstrip("/").rsplit("/", 1)[-1]
        stem = stem.split(".", 1)[0] if "." in stem.strip(".") else stem
        name = _NAME_CHARS.sub("-", stem).strip("-_")[:100] or "pulled"
        return Source(url=model, model_name=name, version="")
    match = _OLLAMA_NAME.match(model)
    template = settings.MODELMGR_PULL_URL
    if match is None or not template:
        raise BadRequest(
            f"cannot pull {model!r}: give an http(s) URL of a model file or .zip"
            + (
                ""
                if template
                else ", or set MODELMGR_PULL_URL (e.g. https://host/{name}/{tag}.zip) to "
                "pull Ollama-style name:tag"
            )
        )
    tag = match["tag"] or "latest"
    return Source(
        url=template.format(name=match["name"], tag=tag),
        model_name=match["name"],
        version="" if tag == "latest" else tag,
    )


def _create(grant: Grant, source: Source) -> int:
    from modelmgr.imports.services import import_create

    with db_pass():
        token = ApiToken.objects.select_related("user").filter(pk=grant.token_id).first()
        if token is None:
            raise Forbidden(f"token {grant.name!r} was revoked")
        job = import_create(
            owner=token.user,
            url=source.url,
            model_name=source.model_name,
            version=source.version or None,
            actor=token.user,
            actor_label=actor_label_for(token.user, token),
        )
        return job.pk


def _run(job_id: int) -> None:
    from modelmgr.imports.runner import import_job_run

    with db_pass():
        import_job_run(job_id)  # None when another runner took it: we follow the row


@dataclass
class Seen:
    state: str
    done: int
    total: int | None
    filename: str
    error: str
    ref: str
    retrying: bool


def _read(job_id: int) -> Seen:
    with db_pass():
        job = DownloadJob.objects.select_related("result_version__model").get(pk=job_id)
        return Seen(
            state=job.state,
            done=job.bytes_done,
            total=job.bytes_total,
            filename=job.filename,
            error=job.error,
            ref=job.result_version.ref if job.result_version else "",
            retrying=job.state == DownloadState.QUEUED and bool(job.error),
        )


def _abandon(job_id: int) -> None:
    """A transient failure the import would retry later: the pull gave up, so cancel the
    job and remove it with its partial file (nothing half-written stays)."""
    from modelmgr.imports.services import import_cancel, import_delete

    with db_pass():
        job = DownloadJob.objects.select_related("owner").get(pk=job_id)
        if job.is_active:
            job = import_cancel(job=job, actor=job.owner, actor_label="ollama pull")
        import_delete(job=job, actor=job.owner, actor_label="ollama pull")


async def pull(grant: Grant, payload: dict, receive, send) -> None:
    grant.check_write("pull models")
    if grant.slots:
        raise Forbidden(
            f"token {grant.name!r} is limited to slot(s) {', '.join(grant.slots)}: it may "
            "not pull models into the registry"
        )
    model = payload.get("model") or payload.get("name")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required: an http(s) URL, or name:tag with MODELMGR_PULL_URL")
    stream = payload.get("stream", True) is not False
    source = pull_source(model)
    loop = asyncio.get_running_loop()
    job_id = await loop.run_in_executor(None, _create, grant, source)
    threading.Thread(target=_run, args=(job_id,), name=f"pull-{job_id}", daemon=True).start()
    gone = threading.Event()  # the client hung up: stop answering (the import goes on)
    watcher = asyncio.ensure_future(watch_disconnect(receive, gone))
    try:
        await _follow(job_id, model, stream, send, gone)
    finally:
        watcher.cancel()


async def _follow(job_id: int, model: str, stream: bool, send, gone: threading.Event) -> None:
    """Answer the pull from the job's row as it changes (see the module docstring)."""
    loop = asyncio.get_running_loop()
    started = False
    last: tuple | None = None

    async def line(obj: dict) -> None:
        nonlocal started
        if not started:
            await send({"type": "http.response.start", "status": 200, "headers": NDJSON})
            started = True
        await send(
            {
                "type": "http.response.body",
                "body": json.dumps(obj).encode() + b"\n",
                "more_body": True,
            }
        )

    while not gone.is_set():
        seen = await loop.run_in_executor(None, _read, job_id)
        failed = seen.state in (DownloadState.FAILED, DownloadState.CANCELLED) or seen.retrying
        if failed:
            if seen.retrying:
                await loop.run_in_executor(None, _abandon, job_id)
            why = seen.error or f"the import was {seen.state}"
            detail = f"pulling {model} failed: {why} (import {job_id}); nothing was stored"
            if not started:
                raise PullFailed(detail)
            await line({"error": detail})
            break
        if seen.state == DownloadState.DONE:
            if not stream:
                return await send_json(send, 200, {"status": "success", "model": seen.ref})
            if not started:
                await line({"status": "pulling manifest"})
            if seen.total or seen.done:
                await line(_progress(seen))
            for status in ("verifying sha256 digest", "writing manifest"):
                await line({"status": status})
            await line({"status": "success", "model": seen.ref})
            break
        if stream and seen.state == DownloadState.RUNNING and seen.done:
            if not started:
                await line({"status": "pulling manifest"})
            now = (seen.done, seen.total)
            if now != last:
                last = now
                await line(_progress(seen))
        await asyncio.sleep(POLL_S)
    if started and not gone.is_set():
        await send({"type": "http.response.body", "body": b""})


def _progress(seen: Seen) -> dict:
    total = seen.total if seen.total is not None else seen.done
    return {
        "status": f"downloading {seen.filename or 'model'}",
        "digest": seen.filename,
        "total": total,
        "completed": seen.done,
    }
