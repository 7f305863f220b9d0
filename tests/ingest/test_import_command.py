from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from modelmgr.models import AuditEvent, ModelVersion, RegisteredModel
from tests.ingest.support import assert_nothing_stored, blob_files, staged_files
from tests.modelfiles import build_huggingface_folder

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_model", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_import_a_folder_creates_the_model_and_a_huggingface_version(tmp_path, staff):
    folder = build_huggingface_folder(tmp_path / "tiny-hf")
    output = run(
        str(folder),
        "--name",
        "tiny-hf",
        "--task",
        "llm",
        "--tag",
        "demo",
        "--description",
        "imported",
    )
    model = RegisteredModel.objects.get(name="tiny-hf")
    assert (model.owner, model.task, model.framework) == (staff, "llm", "huggingface")
    assert list(model.tags.values_list("name", flat=True)) == ["demo"]
    version = model.versions.get()
    assert (version.version, version.description) == ("1", "imported")
    assert sorted(version.files.values_list("path", flat=True)) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert version.source_uri.startswith("file://")
    assert "imported stella/tiny-hf@1 (huggingface, 3 file(s)" in output
    assert staged_files() == []
    assert len(blob_files()) == 3
    assert AuditEvent.objects.filter(action="model.create").count() == 1
    assert AuditEvent.objects.get(action="version.create").actor_label.startswith("import_model")


def test_import_a_file_into_an_existing_model_with_a_version_label(
    model_files, tmp_path, owner, staff
):
    source = model_files.onnx(tmp_path / "detector.onnx")
    RegisteredModel.objects.create(owner=owner, name="detector")
    run(
        str(source),
        "--name",
        "detector",
        "--owner",
        owner.username,
        "--version",
        "2.1",
        "--framework",
        "onnx",
    )
    version = ModelVersion.objects.get()
    assert (version.ref, version.framework, version.model.owner) == ("detector@2.1", "onnx", owner)
    assert version.signature["inputs"][0]["shape"] == ["batch", 4]


def test_duplicate_version_fails_clearly_and_leaves_no_new_rows(model_files, tmp_path, staff):
    source = model_files.onnx(tmp_path / "m.onnx")
    run(str(source), "--name", "m", "--version", "1")
    with pytest.raises(CommandError, match="model m already has version 1"):
        run(str(source), "--name", "m", "--version", "1")
    assert ModelVersion.objects.count() == 1
    assert staged_files() == []


def test_refused_content_leaves_no_model_behind(tmp_path, staff):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not onnx at all")
    with pytest.raises(CommandError, match="not a valid ONNX model"):
        run(str(bad), "--name", "broken")
    assert not RegisteredModel.objects.exists()
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--name", "x", "--owner", "nobody"], "no user named 'nobody'"),
        (["--name", "Not A Slug"], "invalid name or tag"),
        (["--name", "x", "--framework", "tensorrt"], "unknown framework 'tensorrt'"),
    ],
)
def test_bad_arguments_fail_clearly(tmp_path, staff, args, problem):
    source = tmp_path / "notes.txt"
    source.write_bytes(b"hello")
    with pytest.raises(CommandError, match=problem):
        run(str(source), *args)
    assert not RegisteredModel.objects.exists()
    assert_nothing_stored()


def test_missing_path_fails_clearly(tmp_path, staff):
    with pytest.raises(CommandError, match="does not exist"):
        run(str(tmp_path / "nope"), "--name", "x")


def test_without_a_superuser_an_owner_is_required(tmp_path, owner):
    source = tmp_path / "notes.txt"
    source.write_bytes(b"hello")
    with pytest.raises(CommandError, match="no superuser exists"):
        run(str(source), "--name", "x")
