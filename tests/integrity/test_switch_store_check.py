"""A blob replaced in the store is noticed at switch time, against the real worker,
also when the worker holds an intact cached copy (or the model in memory)."""

from __future__ import annotations

import os

import pytest

from modelmgr.models import Slot
from modelmgr.storage import content_store
from tests.deploy.live import live_worker, served_by, switch
from tests.inference.support import make_slot, onnx_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _replace_blob(sha256: str) -> None:
    """Write damaged bytes as a new file renamed over the blob, as a restore or an
    rsync does: the worker's hardlink keeps pointing at the old, intact file."""
    blob = content_store().local_path(sha256)
    damaged = blob.with_name(blob.name + ".new")
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    os.replace(damaged, blob)


def test_a_blob_replaced_in_the_store_fails_the_switch_despite_the_cache(
    api, settings, owner, model_files, tmp_path
):
    v1 = onnx_version(owner, model_files, tmp_path, name="clf", version="1", seed=0)
    v2 = onnx_version(owner, model_files, tmp_path, name="clf", version="2", seed=1)
    make_slot("clf", v1, task="classifier")
    with live_worker(settings, MODELMGR_SWITCH_GRACE_S=0):
        assert switch(api, {"clf": "clf@2"}).status_code == 200
        assert switch(api, {"clf": "clf@1"}).status_code == 200
        _replace_blob(v2.files.get().sha256)
        refused = switch(api, {"clf": "clf@2"})
        assert served_by(api, "clf") == "clf@1"
    assert refused.status_code == 409, refused.content
    assert "artifact model.onnx of clf@2 is corrupt (sha256 mismatch)" in refused.json()["detail"]
    assert Slot.objects.get(name="clf").active_version_id == v1.pk
