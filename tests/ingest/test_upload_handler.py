from __future__ import annotations

import hashlib
import io

import pytest
from django.http.multipartparser import MultiPartParser
from django.test import RequestFactory
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from modelmgr.exceptions import UploadTooLarge
from modelmgr.ingest.upload import StagedUploadedFile, StagingUploadHandler
from tests.ingest.support import staged_files


def multipart(
    files: dict[str, tuple[str, bytes]],
    fields: dict[str, str] | None = None,
    *,
    declare_length: bool = False,
) -> bytes:
    """A multipart/form-data body with BOUNDARY; optionally a per-part Content-Length."""
    lines: list[bytes] = []
    for key, value in (fields or {}).items():
        lines += [
            f"--{BOUNDARY}".encode(),
            f'Content-Disposition: form-data; name="{key}"'.encode(),
            b"",
            value.encode(),
        ]
    for field, (name, data) in files.items():
        lines += [
            f"--{BOUNDARY}".encode(),
            f'Content-Disposition: form-data; name="{field}"; filename="{name}"'.encode(),
            b"Content-Type: application/octet-stream",
        ]
        if declare_length:
            lines.append(f"Content-Length: {len(data)}".encode())
        lines += [b"", data]
    lines += [f"--{BOUNDARY}--".encode(), b""]
    return b"\r\n".join(lines)


def parse(body: bytes, *, stream=None, content_length: int | None = None, handlers=None):
    meta = {
        "CONTENT_TYPE": MULTIPART_CONTENT,
        "CONTENT_LENGTH": str(len(body) if content_length is None else content_length),
    }
    handlers = handlers or [StagingUploadHandler()]
    parser = MultiPartParser(meta, stream or io.BytesIO(body), handlers)
    return parser.parse()


class DisconnectingStream(io.RawIOBase):
    """Serves ``limit`` bytes of ``data`` then fails like a dropped client connection."""

    def __init__(self, data: bytes, limit: int):
        self._data = io.BytesIO(data)
        self._limit = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._data.tell() >= self._limit:
            raise OSError("client disconnected")
        size = self._limit - self._data.tell() if size < 0 else size
        return self._data.read(min(size, self._limit - self._data.tell()))


def test_uploaded_file_is_staged_with_its_sha256_in_one_pass():
    data = b"\x01\x02" * 300_000
    _post, files = parse(multipart({"file": ("model.onnx", data)}))
    uploaded = files["file"]
    assert isinstance(uploaded, StagedUploadedFile)
    assert uploaded.original_name == "model.onnx"
    assert uploaded.staged.sha256 == hashlib.sha256(data).hexdigest()
    assert uploaded.staged.size == uploaded.size == len(data)
    assert staged_files() == [uploaded.staged.path]
    assert uploaded.read() == data
    assert uploaded.open().read(2) == b"\x01\x02"
    uploaded.close()
    assert staged_files() == []


def test_closing_a_committed_upload_does_not_fail(tmp_path):
    _post, files = parse(multipart({"file": ("m.bin", b"abc")}))
    uploaded = files["file"]
    uploaded.staged.path.rename(tmp_path / "moved")  # what ContentStore.commit does
    uploaded.close()
    assert (tmp_path / "moved").read_bytes() == b"abc"


def test_several_files_and_fields_are_parsed():
    _post, files = parse(
        multipart({"a": ("a.bin", b"aaa"), "b": ("b.bin", b"bbbb")}, {"version": "2"})
    )
    assert _post["version"] == "2"
    assert [files["a"].size, files["b"].size] == [3, 4]
    assert len(staged_files()) == 2
    for uploaded in files.values():
        uploaded.close()
    assert staged_files() == []


def test_upload_over_the_cap_is_refused_while_streaming(settings):
    settings.MODELMGR_MAX_UPLOAD_BYTES = 1000
    with pytest.raises(UploadTooLarge) as caught:
        parse(multipart({"file": ("big.bin", b"x" * 5000)}))
    assert caught.value.status == 413
    assert "big.bin" in caught.value.detail and "1000 byte limit" in caught.value.detail
    assert staged_files() == []


def test_upload_declaring_a_length_over_the_cap_is_refused_before_streaming(settings):
    settings.MODELMGR_MAX_UPLOAD_BYTES = 1000
    with pytest.raises(UploadTooLarge):
        parse(multipart({"file": ("big.bin", b"x" * 5000)}, declare_length=True))
    assert staged_files() == []


def test_upload_at_exactly_the_cap_is_accepted(settings):
    settings.MODELMGR_MAX_UPLOAD_BYTES = 1000
    _post, files = parse(multipart({"file": ("edge.bin", b"x" * 1000)}))
    assert files["file"].size == 1000
    files["file"].close()


def test_second_file_over_the_cap_removes_the_first_completed_one_too(settings):
    settings.MODELMGR_MAX_UPLOAD_BYTES = 1000
    with pytest.raises(UploadTooLarge):
        parse(multipart({"ok": ("ok.bin", b"x" * 10), "big": ("big.bin", b"y" * 5000)}))
    assert staged_files() == []


def test_truncated_body_leaves_no_staged_file():
    body = multipart({"file": ("model.onnx", b"z" * 200_000)})
    cut = body[: len(body) // 2]
    _post, files = parse(cut, content_length=len(body))
    assert "file" not in files
    assert staged_files() == []


def test_client_disconnect_mid_file_leaves_no_staged_file():
    body = multipart({"done": ("done.bin", b"d" * 1000), "file": ("model.onnx", b"z" * 500_000)})
    stream = DisconnectingStream(body, limit=len(body) // 2)
    with pytest.raises(OSError, match="client disconnected"):
        parse(body, stream=stream)
    assert staged_files() == []


def test_exception_in_a_handler_mid_file_leaves_no_staged_file():
    class Failing(StagingUploadHandler):
        def receive_data_chunk(self, raw_data, start):
            if start > 0:
                raise RuntimeError("handler failed")
            return super().receive_data_chunk(raw_data, start)

    body = multipart({"file": ("model.onnx", b"z" * 3_000_000)})
    with pytest.raises(RuntimeError, match="handler failed"):
        parse(body, handlers=[Failing()])
    assert staged_files() == []


def test_malformed_multipart_leaves_no_staged_file():
    body = (
        multipart({"file": ("model.onnx", b"QUJD" * 1000)})
        .replace(
            b"Content-Type: application/octet-stream",
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64",
        )
        .replace(b"QUJD" * 1000, b"QUJD" * 1000 + b"Q")
    )  # leftover base64 = truncated
    from django.http.multipartparser import MultiPartParserError

    with pytest.raises(MultiPartParserError):
        parse(body)
    assert staged_files() == []


def test_request_files_go_through_the_configured_handler_and_close_with_the_request():
    body = encode_multipart(BOUNDARY, {"file": io.BytesIO(b"weights")})
    request = RequestFactory().generic("POST", "/upload", body, content_type=MULTIPART_CONTENT)
    uploaded = request.FILES["file"]
    assert isinstance(uploaded, StagedUploadedFile)
    assert len(staged_files()) == 1
    request.close()  # Django does this when the response is closed
    assert staged_files() == []


def test_oversize_request_upload_leaves_nothing(settings):
    settings.MODELMGR_MAX_UPLOAD_BYTES = 10
    body = encode_multipart(BOUNDARY, {"file": io.BytesIO(b"weights" * 100)})
    request = RequestFactory().generic("POST", "/upload", body, content_type=MULTIPART_CONTENT)
    with pytest.raises(UploadTooLarge):
        request.FILES  # noqa: B018 - parsing is the point
    assert staged_files() == []
