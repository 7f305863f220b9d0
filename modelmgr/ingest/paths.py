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
# Invisible or layout characters that make a name display as another one: format
# characters (bidi overrides such as U+202E, zero-width spaces and joiners, the BOM,
# soft hyphens) and the line and paragraph separators.
_SPOOFING_CATEGORIES = {
    "Cf": "format character",
    "Zl": "line separator",
    "Zp": "paragraph separator",
}
# Full stops that are not U+002E but look like one (or like "..") in a file list or a
# zip listing: Arabic, Syriac, stenographic, ideographic, Lisu, Vai. Besides these, any
# character whose compatibility form (NFKC) contains a full stop is refused (U+2024 one
# dot leader, U+2025 two dot leader, U+FF0E fullwidth full stop, ...). Middle dots and
# bullets are allowed: they sit above the baseline and are part of ordinary names.
_LOOKALIKE_DOTS = frozenset("\u06d4\u0701\u0702\u2e3c\u3002\ua4f8\ua60e\uff61")


def clean_relative_path(raw: str) -> str:
    """Return ``raw`` as a normalised relative path, or raise BadPath naming the problem.

    1. Refuse empty and overlong input, control characters (NUL included), backslashes,
       and what lets a name pass for another in the UI or a zip listing: format
       characters (Unicode Cf: bidi overrides, zero-width), line and paragraph
       separators (Zl, Zp) and characters that look like a dot.
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
    for ch in candidate:
        kind = _SPOOFING_CATEGORIES.get(unicodedata.category(ch))
        if kind is not None:
            raise BadPath(f"path {_show(raw)} contains {_codepoint(ch)}, a {kind}{how}")
        if ch != "." and (ch in _LOOKALIKE_DOTS or "." in unicodedata.normalize("NFKC", ch)):
            raise BadPath(
                f"path {_show(raw)} contains {_codepoint(ch)}, which looks like a dot{how}"
            )
    if "\\" in candidate:
        raise BadPath(f"path {_show(raw)} contains a backslash{how}")
    if candidate.startswith("/"):
        raise BadPath(f"path {_show(raw)} is absolute{how}")
    if _DRIVE_RE.match(candidate):
        raise BadPath(f"path {_show(raw)} starts with a drive letter{how}")
    if ".." in candidate.split("/"):
        raise BadPath(f"path {_show(raw)} contains a '..' segment{how}")


def _codepoint(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, '')}".rstrip()


def _show(raw: str) -> str:
    """A printable, bounded rendering of an untrusted path for error messages."""
    text = ascii(raw)
    return text if len(text) <= 120 else text[:117] + "...'"
