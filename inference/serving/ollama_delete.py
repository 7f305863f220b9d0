"""``DELETE /api/delete {"model": "name@version"}``: delete a registry version.

Through the same service as the web API's DELETE (modelmgr.registry.services
.version_delete): refused with 409 while a slot serves the version ("cannot delete what
serves"), 404 when the token's user sees no such version, audited as ``version.delete``
with the token named. Needs the ``write`` scope. A copy the worker holds in its cache
(loaded on demand or pinned) is unloaded afterwards. Ollama answers an empty 200.
"""

from __future__ import annotations

import asyncio

from inference.asgi import BadRequest, json_payload, read_body, send_json
from inference.errors import NotServed
from inference.serving.auth import Grant
from inference.serving.ondemand import version_of
from inference.worker import Worker, db_pass
from modelmgr.audit import actor_label_for
from modelmgr.exceptions import Forbidden, InUse, NotFound
from modelmgr.models import ApiToken


def _delete(worker: Worker, grant: Grant, name: str) -> dict:
    from modelmgr.registry.services import version_delete

    with db_pass():
        if "@" not in name and ":" not in name:
            raise BadRequest(f"name the version to delete: {name}@<version>")
        version = version_of(grant, name)
        ref, version_id = version.ref, version.pk
        token = ApiToken.objects.select_related("user").filter(pk=grant.token_id).first()
        user = token.user if token else None
        version_delete(version=version, actor=user, actor_label=actor_label_for(user, token))
    try:
        worker.unload(version_id=version_id)
    except (NotFound, NotServed):
        pass  # not loaded here
    except InUse:
        pass  # a slot took it meanwhile: the reconcile pass sorts that out
    return {"deleted": ref}


async def delete(worker: Worker, grant: Grant, receive, send) -> None:
    grant.check_write("delete versions")
    payload = json_payload(await read_body(receive))
    name = payload.get("model") or payload.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("model is required: the name@version to delete")
    if grant.slots:
        raise Forbidden(
            f"token {grant.name!r} is limited to slot(s) {', '.join(grant.slots)}: it may "
            "not delete registry versions"
        )
    result = await asyncio.get_running_loop().run_in_executor(None, _delete, worker, grant, name)
    await send_json(send, 200, result)
