"""Helpers for API tests: uploads of real tiny models and a look at what is stored."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from django.conf import settings


def upload(api, name: str, source: Path, **form):
    with source.open("rb") as fh:
        return api.post(f"/api/v1/models/{name}/versions", {"file": fh, **form})


def zip_of(files: dict[str, bytes], dest: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    dest.write_bytes(buffer.getvalue())
    return dest


def stored_blobs() -> list[Path]:
    root = Path(settings.ARTIFACT_ROOT) / "sha256"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def staged_files() -> list[Path]:
    return sorted(p for p in Path(settings.STAGING_ROOT).rglob("*") if p.is_file())


def body_of(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content
