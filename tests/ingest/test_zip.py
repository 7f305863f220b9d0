from __future__ import annotations

import io
import stat
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from modelmgr.exceptions import BadPath, IngestRejected
from modelmgr.ingest.services import incoming_from_upload, version_create
from modelmgr.ingest.zipsafe import extract_zip_to_staging
from tests.ingest.support import (
    assert_nothing_stored,
    stage_bytes,
    staged_files,
    zip_bytes,
    zip_folder,
)
from tests.modelfiles import build_huggingface_folder

pytestmark = pytest.mark.django_db


def upload_zip(data: bytes, name: str = "model.zip"):
    return incoming_from_upload(SimpleUploadedFile(name, data))


def refused(data: bytes, exc=IngestRejected) -> str:
    with pytest.raises(exc) as caught:
        upload_zip(data)
    assert_nothing_stored()
    return caught.value.detail


def with_name_bytes(data: bytes, placeholder: bytes, replacement: bytes) -> bytes:
    """Rewrite an entry name in both the local header and the central directory."""
    assert len(placeholder) == len(replacement)
    assert data.count(placeholder) == 2
    return data.replace(placeholder, replacement)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../evil.onnx", "'..' segment"),
        ("a/../../evil.onnx", "'..' segment"),
        ("/etc/cron.d/evil", "absolute"),
        ("C:/evil.onnx", "drive letter"),
        ("..\\evil.onnx", "backslash"),
        ("a\\..\\..\\evil.onnx", "backslash"),
        ("%2e%2e/evil.onnx", "'..' segment once percent-decoded"),
        ("..%2fevil.onnx", "'..' segment once percent-decoded"),
        ("model\x07.onnx", "control character"),
    ],
)
def test_zip_slip_entry_is_refused_naming_the_entry(name, problem):
    data = zip_bytes({"ok.txt": b"fine", name: b"payload"})
    detail = refused(data, BadPath)
    assert problem in detail
    assert "zip entry" in detail


def test_zip_entry_with_a_nul_byte_is_refused():
    data = with_name_bytes(zip_bytes({"evilXonnx.txt": b"payload"}), b"evilXonnx", b"evil\x00onnx")
    assert "NUL or control character" in refused(data, BadPath)


def test_zip_with_dotdot_directory_entry_is_refused():
    data = zip_bytes({"../": b"", "ok.txt": b"fine"})
    assert "'..' segment" in refused(data, BadPath)


def test_zip_with_symlink_entry_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.onnx", b"data")
        link = zipfile.ZipInfo("weights.bin")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    detail = refused(buffer.getvalue())
    assert "weights.bin" in detail and "symbolic link" in detail


def test_zip_with_too_many_files_is_refused(settings):
    settings.MODELMGR_ZIP_MAX_FILES = 3
    data = zip_bytes({f"f{i}.txt": b"x" for i in range(4)})
    assert "more than 3 files" in refused(data)


def test_zip_at_the_file_limit_is_accepted(settings):
    settings.MODELMGR_ZIP_MAX_FILES = 3
    files = upload_zip(zip_bytes({f"f{i}.txt": b"x" for i in range(3)}))
    assert len(files) == 3


def test_zip_bomb_over_the_ratio_cap_is_refused(settings):
    settings.MODELMGR_ZIP_MAX_RATIO = 20
    data = zip_bytes({"config.json": b"{}", "bomb.bin": b"\0" * 400_000})
    detail = refused(data)
    assert "bomb.bin" in detail and "20:1" in detail


def test_zip_over_the_total_size_cap_is_refused(settings):
    settings.MODELMGR_ZIP_MAX_TOTAL_BYTES = 100_000
    data = zip_bytes(
        {f"part{i}.bin": bytes(range(256)) * 200 for i in range(3)}, compression=zipfile.ZIP_STORED
    )
    assert "more than 100000 bytes" in refused(data)


def test_zip_over_the_overall_ratio_is_refused_while_streaming(settings):
    # Each entry alone stays under the cap thanks to the small-entry floor; together
    # they decompress past the archive-wide ratio.
    settings.MODELMGR_ZIP_MAX_RATIO = 10
    data = zip_bytes({f"zeros{i}.bin": b"\0" * 40_000 for i in range(8)})
    detail = refused(data)
    assert "10:1" in detail


def test_zip_with_duplicate_paths_is_refused():
    data = zip_bytes({"a/model.onnx": b"one", "a/./model.onnx": b"two"})
    assert "'a/model.onnx' appears more than once" in refused(data)


def test_zip_with_a_file_and_a_folder_of_the_same_name_is_refused():
    data = zip_bytes({"weights": b"one", "weights/part0": b"two"})
    assert "both a file and a folder" in refused(data)


def test_encrypted_zip_entry_is_refused():
    data = zip_bytes({"model.onnx": b"secret"}, compression=zipfile.ZIP_STORED)
    # set the "encrypted" general purpose flag in the local header and central directory
    local, central = b"PK\x03\x04\x14\x00", b"PK\x01\x02\x14\x03\x14\x00"
    data = data.replace(local + b"\x00\x00", local + b"\x01\x00", 1)
    data = data.replace(central + b"\x00\x00", central + b"\x01\x00", 1)
    assert "encrypted" in refused(data)


def test_not_a_zip_is_refused():
    assert "not a valid zip archive" in refused(b"definitely not a zip file")


def test_truncated_zip_is_refused():
    data = zip_bytes({"model.bin": bytes(range(256)) * 100})
    assert "zip" in refused(data[: len(data) - 30])


def test_zip_whose_entry_fails_its_crc_is_refused_and_earlier_entries_removed():
    data = zip_bytes(
        {"a.txt": b"first entry", "b.txt": b"second entry"}, compression=zipfile.ZIP_STORED
    )
    data = data.replace(b"second entry", b"SECOND entry")
    assert "corrupt" in refused(data)


def test_zip_with_no_files_is_refused():
    assert "no files" in refused(zip_bytes({"empty/": b""}))


def test_shared_top_folder_is_stripped(tmp_path):
    """``zip -r m.zip m/`` nests everything under m/; the version holds m's contents."""
    folder = build_huggingface_folder(tmp_path / "m")
    files = upload_zip(zip_folder(folder, top="m"))
    assert sorted(f.path for f in files) == ["config.json", "model.safetensors", "tokenizer.json"]


def test_single_nested_file_is_stripped_too():
    files = upload_zip(zip_bytes({"m/model.onnx": b"x"}))
    assert [f.path for f in files] == ["model.onnx"]


def test_folders_are_kept_when_files_do_not_share_one():
    files = upload_zip(zip_bytes({"model.onnx": b"x", "extra/weights.bin": b"y"}))
    assert sorted(f.path for f in files) == ["extra/weights.bin", "model.onnx"]


def test_directory_entries_and_archive_litter_are_skipped():
    files = upload_zip(
        zip_bytes(
            {"m/": b"", "m/model.onnx": b"x", "__MACOSX/m/._model.onnx": b"r", "m/.DS_Store": b"d"}
        )
    )
    assert [f.path for f in files] == ["model.onnx"]


def test_extracted_files_are_staged_and_the_archive_is_removed():
    files = upload_zip(zip_bytes({"a.bin": b"aaa", "b.bin": b"bbbb"}))
    assert sorted(p.name for p in staged_files()) == sorted(f.staged.path.name for f in files)
    assert [f.staged.size for f in sorted(files, key=lambda f: f.path)] == [3, 4]


def test_upload_path_puts_archive_contents_under_a_folder():
    files = incoming_from_upload(
        SimpleUploadedFile("bundle.zip", zip_bytes({"m.onnx": b"x"})), path="sub"
    )
    assert [f.path for f in files] == ["sub/m.onnx"]


def test_archive_false_keeps_a_zip_as_one_file():
    files = incoming_from_upload(
        SimpleUploadedFile("data.zip", zip_bytes({"m.onnx": b"x"})), archive=False
    )
    assert [f.path for f in files] == ["data.zip"]


def test_extract_leaves_the_given_staged_zip_alone_on_failure():
    staged = stage_bytes(zip_bytes({"../x": b"y"}))
    with pytest.raises(BadPath):
        extract_zip_to_staging(staged)
    assert staged_files() == [staged.path]
    staged.discard()


def test_huggingface_folder_zip_becomes_a_huggingface_version(tmp_path, tiny_model, owner):
    folder = build_huggingface_folder(tmp_path / "m")
    files = upload_zip(zip_folder(folder, top="m"))
    version = version_create(model=tiny_model, actor=owner, files=files)
    assert version.framework == "huggingface"
    assert version.primary_file.path == "model.safetensors"
    assert version.inspection["architectures"] == ["TinyMLP"]
    assert staged_files() == []


def test_zip_declaring_a_huge_directory_is_refused_before_parsing_it(settings):
    settings.MODELMGR_ZIP_MAX_FILES = 5
    data = zip_bytes({f"d{i}/": b"" for i in range(40)})
    assert "more than 5 files" in refused(data)
