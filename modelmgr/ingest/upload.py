"""Upload handler: every uploaded file streams into staging, hashed in the same pass.

Django's MultiPartParser cleans up after a handler only in some failure paths: an
exception from the parser loop (client disconnect, malformed body, a handler raising)
leaves the handler's half-written file alone. ``handle_raw_input`` therefore runs the
parse itself, nested once, so it can remove every staged file on *any* exception.

Running the parse also lets ingest see each file's name as the client sent it
(``UploadNameParser``): Django's parser would quietly turn ``../x.onnx`` into ``x.onnx``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http.multipartparser import MultiPartParser

from modelmgr.exceptions import UploadTooLarge
from modelmgr.storage import StagedBlob, StagingWriter


class UploadNameParser(MultiPartParser):
    """Django's multipart parser, passing each file's name on exactly as the client sent it.

    Django's ``sanitize_file_name`` keeps only the last path part and drops control
    characters (``../x.onnx`` becomes ``x.onnx``, ``a\\x00b.onnx`` becomes ``ab.onnx``), and
    skips a part named ``..`` altogether. Ingest vets every name itself and refuses these
    with 400 (modelmgr.ingest.paths), so it must be given the real one.
    """

    def sanitize_file_name(self, file_name: str) -> str:
        return file_name


def display_name(raw: str) -> str:
    """A harmless name for Django's ``UploadedFile.name``: the last path part, printable.

    Only for display and Django's own checks; ingest uses ``original_name``, vetted.
    """
    last = raw.replace("\\", "/").rsplit("/", 1)[-1]
    shown = "".join(ch for ch in last if ch.isprintable())
    return shown if shown not in ("", ".", "..") else "upload"


class StagedUploadedFile(UploadedFile):
    """An uploaded file already hashed in staging.

    ``staged`` is what ingest commits into the store (one rename). Closing the file,
    which Django does at the end of the request, deletes the staging file unless it was
    committed (moved away) or discarded before. ``original_name`` is the name as sent
    (see UploadNameParser); ``name`` is its display form.
    """

    def __init__(
        self,
        *,
        staged: StagedBlob,
        original_name: str,
        content_type: str | None = None,
        charset: str | None = None,
        content_type_extra: dict | None = None,
    ):
        super().__init__(
            file=staged.path.open("rb"),
            name=display_name(original_name),
            content_type=content_type,
            size=staged.size,
            charset=charset,
            content_type_extra=content_type_extra,
        )
        self.staged = staged
        self.original_name = original_name

    @property
    def sha256(self) -> str:
        return self.staged.sha256

    def open(self, mode: str | None = None) -> StagedUploadedFile:
        # File.open() would reopen by the original name, which is not where the bytes are.
        if self.file.closed:
            self.file = self.staged.path.open("rb")
        else:
            self.file.seek(0)
        return self

    def temporary_file_path(self) -> str:
        return str(self.staged.path)

    def close(self) -> None:
        try:
            if not self.file.closed:
                self.file.close()
        finally:
            self.staged.discard()


class StagingUploadHandler(FileUploadHandler):
    """Streams each uploaded file into a StagingWriter with the per-file size cap."""

    chunk_size = 1024 * 1024  # MultiPartParser wants a multiple of 4

    def __init__(self, request=None):
        super().__init__(request)
        self._writer: StagingWriter | None = None
        self._completed: list[StagedUploadedFile] = []
        self._parsing = False

    @property
    def limit(self) -> int:
        return settings.MODELMGR_MAX_UPLOAD_BYTES

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        """Run the multipart parse inside a guard that removes staged files on failure.

        1. The nested parser calls this method again: answer None so it parses normally.
        2. Any exception out of the parse (including ours, such as UploadTooLarge)
           discards the file in progress and every completed one, then propagates.
        """
        if self._parsing:
            return None
        handlers = list(self.request.upload_handlers) if self.request is not None else [self]
        self._parsing = True
        try:
            return UploadNameParser(META, input_data, handlers, encoding).parse()
        except BaseException:
            self.discard_all()
            raise
        finally:
            self._parsing = False

    def new_file(
        self,
        field_name,
        file_name,
        content_type,
        content_length,
        charset=None,
        content_type_extra=None,
    ):
        super().new_file(
            field_name, file_name, content_type, content_length, charset, content_type_extra
        )
        self._abort_in_progress()
        # A declared length is only a hint, but an honest oversize one fails fast.
        if content_length is not None and content_length > self.limit:
            raise UploadTooLarge(
                f"upload {file_name!r} is {content_length} bytes, over the {self.limit} byte limit"
            )
        self._writer = StagingWriter(limit=self.limit, suffix=".upload", pipelined=True)

    def receive_data_chunk(self, raw_data, start):
        if self._writer is None:
            return raw_data
        try:
            self._writer.write(raw_data)
        except UploadTooLarge:
            self._writer = None  # the writer already removed its file
            raise UploadTooLarge(
                f"upload {self.file_name!r} is over the {self.limit} byte limit"
            ) from None
        except BaseException:
            self._abort_in_progress()
            raise
        return None

    def file_complete(self, file_size):
        if self._writer is None:
            return None
        blob = self._writer.finish()
        self._writer = None
        uploaded = StagedUploadedFile(
            staged=blob,
            original_name=self.file_name,
            content_type=self.content_type,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )
        self._completed.append(uploaded)
        return uploaded

    def upload_interrupted(self):
        self._abort_in_progress()

    def upload_complete(self):
        # Another handler may have stopped the upload mid-file; never keep its remains.
        self._abort_in_progress()

    def _abort_in_progress(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    def discard_all(self) -> None:
        self._abort_in_progress()
        for uploaded in self._completed:
            uploaded.close()
        self._completed.clear()
