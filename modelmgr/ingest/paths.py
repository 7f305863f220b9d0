"""Clean, relative, POSIX paths for files inside a model version.

Every path that comes from outside (an upload's name, a form field, a zip entry, an
ONNX external-data ``location``) passes through ``clean_relative_path`` before it is
used anywhere. The returned path never escapes the version folder, whatever later
joins, URL-decodes or Windows tools make of it.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from modelmgr.exceptions import BadPath

MAX_PATH_LENGTH = 1024
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
# Decoding more than this many layers of percent-encoding is itself suspicious.
_MAX_DECODE_ROUNDS = 8


def clean_relative_path(raw: str) -> str:
    """Return ``raw`` as a normalised relative path, or raise BadPath naming the problem.

    1. Refuse empty and overlong input, control characters (NUL included) and backslashes.
    2. Refuse absolute forms: ``/x``, ``C:x`` (drive letters), and ``\\\\server``
       (already refused as a backslash).
    3. Percent-decode repeatedly until stable and apply the same checks to the decoded
       form, so ``%2e%2e/`` or ``%252e%252e%252f`` cannot smuggle a ``..`` past a later
       decoder. The path itself is kept as given (a file may really be named ``a%20b``).
    4. Split on ``/``: refuse ``..`` segments, drop ``.`` and empty segments.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise BadPath("the path is empty")
    if len(raw) > MAX_PATH_LENGTH:
        raise BadPath(f"the path is longer than {MAX_PATH_LENGTH} characters")
    _check_form(raw, raw)

    decoded = raw
    for _ in range(_MAX_DECODE_ROUNDS):
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
        _check_form(decoded, raw, decoded=True)
    else:
        raise BadPath(f"path {_show(raw)} is percent-encoded too many times")

    segments = [segment for segment in raw.split("/") if segment not in ("", ".")]
    if not segments:
        raise BadPath(f"path {_show(raw)} names no file")
    return "/".join(segments)


def _check_form(candidate: str, raw: str, *, decoded: bool = False) -> None:
    how = " once percent-decoded" if decoded else ""
    if any(unicodedata.category(ch) == "Cc" for ch in candidate):
        raise BadPath(f"path {_show(raw)} contains a NUL or control character{how}")
    if "\\" in candidate:
        raise BadPath(f"path {_show(raw)} contains a backslash{how}")
    if candidate.startswith("/"):
        raise BadPath(f"path {_show(raw)} is absolute{how}")
    if _DRIVE_RE.match(candidate):
        raise BadPath(f"path {_show(raw)} starts with a drive letter{how}")
    if ".." in candidate.split("/"):
        raise BadPath(f"path {_show(raw)} contains a '..' segment{how}")


def _show(raw: str) -> str:
    """A printable, bounded rendering of an untrusted path for error messages."""
    text = ascii(raw)
    return text if len(text) <= 120 else text[:117] + "...'"
