"""The name a downloaded file gets inside its version."""

from __future__ import annotations

import re
from email.message import Message

import httpx

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._+-]+")
NAME_MAX = 200


def filename_for(disposition: str, url: str, final_url: str) -> str:
    """The file's name: Content-Disposition, else the URL's last path segment.

    The requested URL's name wins over the final one when it has an extension: Hugging
    Face and S3 redirect ``.../model.onnx`` to a content-addressed CDN path.
    """
    if disposition:
        message = Message()
        message["content-disposition"] = disposition
        name = safe_name(message.get_filename() or "")
        if name:
            return name
    # httpx.URL.path is already percent-decoded.
    names = [safe_name(httpx.URL(u).path.rsplit("/", 1)[-1]) for u in (url, final_url)]
    for name in names:
        if "." in name.strip("."):
            return name
    return names[0] or names[1] or "download"


def safe_name(raw: str) -> str:
    """One plain path segment: no folders, no leading dots, only [A-Za-z0-9._+-]."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return _UNSAFE_NAME_CHARS.sub("_", base).lstrip(".")[:NAME_MAX]
