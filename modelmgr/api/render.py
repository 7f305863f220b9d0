"""JSON answers of the hot read routes, built straight from the rows.

ninja validates a returned ORM object through ``DjangoGetter``: every attribute of every
item goes through a Python ``__getattr__``, a resolver lookup and a result conversion,
and each ``obj.files.all()`` in a resolver builds a new related manager. For a page of 50
versions that was about 2,300 getter calls, most of a page's time in the web process
(benchmarks/registry.py). These functions build the same dict the schema would, field
by field from the schema's own field list (a field added to a schema later is picked up
here too: plain attributes as they are, the schema's resolvers for the rest), and
render it as ninja would (``NinjaJSONEncoder``). The operations still declare their
response schema, so OpenAPI is unchanged; tests/api/test_render.py checks that both
give the same JSON.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from ninja.responses import NinjaJSONEncoder

from modelmgr.api.schemas import FileOut, ModelOut, VersionOut

CONTENT_TYPE = "application/json; charset=utf-8"


def json_response(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(
        json.dumps(data, cls=NinjaJSONEncoder), status=status, content_type=CONTENT_TYPE
    )


def _fields(schema, obj, computed: dict[str, Any]) -> dict[str, Any]:
    resolvers = schema._ninja_resolvers
    out = {}
    for name in schema.model_fields:
        if name in computed:
            out[name] = computed[name]
        elif name in resolvers:
            out[name] = resolvers[name](getter=_Getter(obj))
        else:
            out[name] = getattr(obj, name)
    return out


class _Getter:
    """What a ninja resolver is called with (it reads ``getter._obj``)."""

    __slots__ = ("_obj", "_context")

    def __init__(self, obj):
        self._obj = obj
        self._context = None


def file_dict(artifact) -> dict[str, Any]:
    return _fields(FileOut, artifact, {})


def version_dict(version, *, model=None, files: list[dict] | None = None) -> dict[str, Any]:
    """VersionOut of ``version``. ``model``: its model, already at hand (with its owner);
    ``files``: its files as FileOut dicts (selectors.version_files), else read here.

    ``created_by_name`` / ``provider_name`` annotations (modelmgr.registry.selectors)
    save the joins' instances."""
    model = model or version.model
    # The prefetched rows as they are: version.files.all() would build a related
    # manager and a queryset clone per version.
    if files is None:
        files = [file_dict(f) for f in _prefetched(version, "files")]
    created_by = getattr(version, "created_by_name", _MISSING)
    if created_by is _MISSING:
        created_by = version.created_by.get_username() if version.created_by_id else None
    provider = getattr(version, "provider_name", _MISSING)
    if provider is _MISSING:
        provider = version.provider.name if version.provider_id else None
    return _fields(
        VersionOut,
        version,
        {
            "model": model.name,
            "owner": model.owner.get_username(),
            "ref": f"{model.name}@{version.version}",
            "created_by": created_by,
            "provider": provider,
            "files": files,
            "primary_path": next((f["path"] for f in files if f["is_primary"]), None),
        },
    )


def model_dict(model) -> dict[str, Any]:
    return _fields(ModelOut, model, {"owner": model.owner.get_username()})


def _prefetched(obj, name: str):
    cached = getattr(obj, "_prefetched_objects_cache", {}).get(name)
    return cached if cached is not None else getattr(obj, name).all()


_MISSING = object()
