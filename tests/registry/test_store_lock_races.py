"""A blob reused by an upload is never unlinked under it by a concurrent collection.

Each test makes the dangerous interleaving happen on purpose: a hook on
``ContentStore.commit`` pauses an upload right after it decided to reuse (or put) a
blob and before its rows commit, and lets the other party run meanwhile. Without the
store lock the other party unlinks the blob in that pause; with it, the other party
waits for the COMMIT, so the pause only ends by timing out (CONTENDED_S).
Threads have their own database connections, as processes would.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from modelmgr.ingest.services import version_create, version_verify
from modelmgr.models import ModelVersion, RegisteredModel
from modelmgr.registry.gc import blobs_collect
from modelmgr.storage import ContentStore, content_store
from tests.ingest.support import incoming

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_S = 30
# How long a paused party leaves the other one to get in (it cannot, once fixed).
CONTENDED_S = 1.0
DATA = b"weights shared by several versions"


def pause_after_commit(monkeypatch, pauses: dict):
    """Run ``pauses[thread name]`` right after ContentStore.commit in that thread."""
    original = ContentStore.commit

    def commit(self, staged):
        created = original(self, staged)
        pause = pauses.get(threading.current_thread().name)
        if pause is not None:
            pause(created)
        return created

    monkeypatch.setattr(ContentStore, "commit", commit)


def run(target, name: str, outcome: dict, done: threading.Event | None = None):
    def body():
        try:
            outcome[name] = target()
        except BaseException as exc:  # noqa: BLE001 - asserted on by the test
            outcome[name] = exc
        finally:
            if done is not None:
                done.set()
            connection.close()

    thread = threading.Thread(target=body, name=name)
    thread.start()
    return thread


def assert_blob_serves(version: ModelVersion, owner) -> None:
    sha = version.files.get().sha256
    content_store().verify(sha, len(DATA))
    assert version_verify(version=version, actor=owner)["ok"]


@pytest.mark.parametrize("nested", [False, True], ids=["own-transaction", "caller-transaction"])
def test_collection_waits_for_the_upload_that_reuses_the_blob(owner, monkeypatch, nested):
    """A delete committed; its collection runs while an upload of the same bytes has
    found the blob stored (and dropped its staged copy) but not committed yet. Nested:
    the upload runs in its caller's transaction (a new model's first version), so the
    lock must last until that outer COMMIT."""
    model = RegisteredModel.objects.create(owner=owner, name="race")
    old = version_create(model=model, actor=owner, files=[incoming("w.bin", DATA)], version="1")
    sha = old.files.get().sha256
    old.delete()  # the delete's rows are committed; its collection is what races below
    reused, collected = threading.Event(), threading.Event()

    def hold(created: bool) -> None:
        assert not created, "the blob was there: the upload reuses it"
        reused.set()
        collected.wait(CONTENDED_S)  # the collector would unlink it now without the lock

    def upload():
        files = [incoming("w.bin", DATA)]
        if not nested:
            return version_create(model=model, actor=owner, files=files, version="2")
        with transaction.atomic():
            created = version_create(model=model, actor=owner, files=files, version="2")
            hold(False)  # the caller's own work after ingest, before its COMMIT
            return created

    pause_after_commit(monkeypatch, {} if nested else {"uploader": hold})
    outcome: dict = {}
    uploader = run(upload, "uploader", outcome)
    assert reused.wait(WAIT_S)
    collector = run(lambda: blobs_collect([sha]), "collector", outcome, done=collected)
    uploader.join(WAIT_S)
    collector.join(WAIT_S)

    assert isinstance(outcome["uploader"], ModelVersion), outcome["uploader"]
    assert outcome["collector"] == [], "the collector saw the committed row and kept the blob"
    assert_blob_serves(outcome["uploader"], owner)


def test_failed_upload_cleanup_spares_the_blob_a_concurrent_upload_reuses(owner, monkeypatch):
    """Upload A puts a new blob and then fails; its cleanup removes the blobs it created
    unless referenced. Upload B of the same bytes must not decide to reuse the blob
    between A's put and A's cleanup (or, if it does, A must see B's row)."""
    first = RegisteredModel.objects.create(owner=owner, name="fails")
    second = RegisteredModel.objects.create(owner=owner, name="reuses")
    put, decided, cleaned = threading.Event(), threading.Event(), threading.Event()

    def fail_after_put(created: bool) -> None:
        assert created, "the blobs are new: upload A puts them"
        if not put.is_set():  # A's first file (DATA) is in the store now
            put.set()
            decided.wait(CONTENDED_S)  # B would decide to reuse it now without the lock
            return
        raise OSError("the disk went away after the put")  # A's second file

    def reuse(created: bool) -> None:
        decided.set()
        cleaned.wait(CONTENDED_S)  # A's cleanup would unlink it now without the lock

    pause_after_commit(monkeypatch, {"failing": fail_after_put, "reusing": reuse})
    outcome: dict = {}
    failing = run(
        lambda: version_create(
            model=first,
            actor=owner,
            files=[incoming("a.bin", DATA), incoming("b.bin", b"only upload A has this")],
        ),
        "failing",
        outcome,
        done=cleaned,
    )
    assert put.wait(WAIT_S)
    reusing = run(
        lambda: version_create(model=second, actor=owner, files=[incoming("w.bin", DATA)]),
        "reusing",
        outcome,
    )
    failing.join(WAIT_S)
    reusing.join(WAIT_S)

    assert isinstance(outcome["failing"], OSError)
    assert not ModelVersion.objects.filter(model=first).exists()
    assert isinstance(outcome["reusing"], ModelVersion), outcome["reusing"]
    assert_blob_serves(outcome["reusing"], owner)
