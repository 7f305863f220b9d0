"""/models/{name}/versions: upload, list, show, change, delete, download and verify versions.

Also /versions/{ref}: resolve ``name@version`` (or bare ``name``: newest available).
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import File, Form, Query, Router, Schema, Status
from ninja.files import UploadedFile
from pydantic import Field

from modelmgr.api.auth import request_actor_label
from modelmgr.api.render import json_response, version_dict
from modelmgr.api.schemas import (
    FileOut,
    VerifyOut,
    VersionFields,
    VersionFileQuery,
    VersionOut,
    VersionPage,
    VersionPatch,
    VersionUploadForm,
)
from modelmgr.exceptions import NotFound
from modelmgr.models import ModelVersion
from modelmgr.registry import download, selectors, services
from modelmgr.registry.pagination import MAX_LIMIT

router = Router(tags=["versions"])

BASE = "/models/{name}/versions"
ONE = BASE + "/{version}"


class VersionFilters(Schema):
    status: str | None = None
    owner: str | None = Field(None, description="username, when staff see several models")
    cursor: str | None = None
    limit: int = Field(50, ge=1, le=MAX_LIMIT)


def _version(request: HttpRequest, name: str, version: str, owner: str | None) -> ModelVersion:
    return selectors.version_lookup(user=request.user, name=name, version=version, owner=owner)


def _reread(request: HttpRequest, version: ModelVersion) -> ModelVersion:
    return selectors.version_queryset(user=request.user).get(pk=version.pk)


@router.post(BASE, response={201: VersionOut}, summary="Upload a version (multipart)")
def upload_version(
    request: HttpRequest, name: str, file: File[UploadedFile], form: Form[VersionUploadForm]
):
    """Upload ``file`` (a model file or a zip) as a new version of ``name``.

    The model is registered in the caller's namespace on its first upload (task,
    tags and description come from the form). Nothing is kept when the upload fails.
    """
    from modelmgr.ingest.services import incoming_from_upload

    fields = form.fields()  # malformed JSON: 422 before anything is staged for ingest
    tags = form.tag_list()
    incoming = incoming_from_upload(file, path=form.path, archive=form.archive)
    return _created(request, name, form, incoming, fields, tags, version=form.version)


def _created(request, name, given: VersionFields, incoming, fields, tags, *, version):
    """Both uploads' last step: the version from the incoming files, 201 with it."""
    from modelmgr.registry.uploads import version_upload

    created = version_upload(
        actor=request.user,
        name=name,
        owner=given.owner,
        files=incoming,
        task=given.task,
        tags=tags,
        version=version,
        framework=given.framework,
        primary_path=given.primary_path,
        fields=fields,
        source_uri="",
        actor_label=request_actor_label(request),
    )
    return Status(201, _reread(request, created))


@router.put(
    ONE + "/files/{path:path}",
    response={201: VersionOut},
    summary="Upload a one-file version as the raw body (streamed, hashed as it arrives)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
def put_version_file(
    request: HttpRequest, name: str, version: str, path: str, params: Query[VersionFileQuery]
):
    """Create version ``version`` of ``name`` from the request body: the file at ``path``
    (a zip is unpacked under ``path``'s folder when ``archive`` is true or the name ends
    in ``.zip``). Same checks, fields and guarantees as the multipart upload; the body
    is the file, so the web process writes it once into staging while hashing it and
    commits it with a rename (the fastest way in: ``curl -T model.onnx``). With
    ``sha256`` or ``Content-Digest`` a body that hashes otherwise is refused and
    nothing is kept.
    """
    from modelmgr.ingest.raw_body import expected_sha256, staged_body
    from modelmgr.ingest.sources import incoming_from_staged

    expected = expected_sha256(request, params.sha256)  # 422 before the body is used
    fields = params.fields()
    tags = params.tag_list()
    staged = staged_body(request, expected=expected)
    unpack = params.archive if params.archive is not None else path.lower().endswith(".zip")
    folder = path.rsplit("/", 1)[0] if "/" in path else None
    incoming = incoming_from_staged(
        staged, name=path, path=folder if unpack else path, archive=unpack
    )
    return _created(request, name, params, incoming, fields, tags, version=version)


@router.get(BASE, response=VersionPage, summary="List a model's versions (newest first)")
def list_versions(request: HttpRequest, name: str, filters: Query[VersionFilters]):
    model = selectors.model_get(user=request.user, name=name, owner=filters.owner)
    page = selectors.version_list(
        user=request.user,
        model=model,
        status=filters.status,
        cursor=filters.cursor,
        limit=filters.limit,
        files=False,
    )
    files = selectors.version_files(page.items)
    items = [version_dict(v, model=model, files=files[v.pk]) for v in page.items]
    return json_response({"items": items, "next_cursor": page.next_cursor})


@router.get(ONE, response=VersionOut, summary="Show a version")
def get_version(request: HttpRequest, name: str, version: str, owner: str | None = None):
    return json_response(version_dict(_version(request, name, version, owner)))


@router.patch(ONE, response=VersionOut, summary="Change metadata, archive, unarchive, pin")
def update_version(
    request: HttpRequest,
    name: str,
    version: str,
    payload: VersionPatch,
    owner: str | None = None,
):
    found = _version(request, name, version, owner)
    changes = payload.dict(exclude_unset=True)
    status = changes.pop("status", None)
    pinned = bool(changes.pop("pinned")) if "pinned" in changes else None  # null: unpin
    updated = services.version_update(
        version=found,
        actor=request.user,
        fields=changes,
        status=status,
        pinned=pinned,
        actor_label=request_actor_label(request),
    )
    return _reread(request, updated)


@router.delete(ONE, response={204: None}, summary="Delete a version (not while a slot serves it)")
def delete_version(request: HttpRequest, name: str, version: str, owner: str | None = None):
    found = _version(request, name, version, owner)
    services.version_delete(
        version=found, actor=request.user, actor_label=request_actor_label(request)
    )
    return Status(204, None)


@router.get(ONE + "/files", response=list[FileOut], summary="List a version's files")
def list_files(request: HttpRequest, name: str, version: str, owner: str | None = None):
    return list(_version(request, name, version, owner).files.all())


@router.get(
    ONE + "/files/{path:path}",
    summary="Download one file (supports Range, If-Range, If-None-Match)",
    response={200: None, 206: None, 304: None, 416: None},
)
def download_file(
    request: HttpRequest, name: str, version: str, path: str, owner: str | None = None
):
    found = _version(request, name, version, owner)
    artifact = next((f for f in found.files.all() if f.path == path), None)
    if artifact is None:
        raise NotFound(f"{found.ref} has no file {path!r}")
    return download.file_response(request, artifact)


@router.get(ONE + "/download", summary="Download the whole version as a streamed zip")
def download_zip(request: HttpRequest, name: str, version: str, owner: str | None = None):
    return download.zip_response(request, _version(request, name, version, owner))


@router.post(
    ONE + "/verify", response=VerifyOut, summary="Re-hash every stored file against its sha256"
)
def verify_version(request: HttpRequest, name: str, version: str, owner: str | None = None):
    from modelmgr.ingest.services import version_verify

    found = _version(request, name, version, owner)
    return version_verify(
        version=found, actor=request.user, actor_label=request_actor_label(request)
    )


resolve_router = Router(tags=["versions"])


@resolve_router.get(
    "/versions/{path:ref}",
    response=VersionOut,
    summary="Resolve name@version, owner/name@version, or bare name (newest available)",
)
def resolve_version(request: HttpRequest, ref: str):
    return json_response(version_dict(selectors.version_resolve(user=request.user, ref=ref)))
