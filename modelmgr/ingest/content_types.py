"""Content types of stored files, from our own table.

The system's MIME database is not ours to trust: on Debian `.pt` is
`application/vnd.snesdev-page-table` and `.bin` varies by machine. Model files are
opaque bytes to a browser (`application/octet-stream`: downloaded, never rendered);
the few text formats a model ships with get their real type. Anything else is
octet-stream too, so the same file gets the same type on every machine.
"""

from __future__ import annotations

from pathlib import PurePosixPath

OCTET_STREAM = "application/octet-stream"

CONTENT_TYPES: dict[str, str] = {
    # weights and model graphs
    ".onnx": OCTET_STREAM,
    ".ort": OCTET_STREAM,
    ".pt": OCTET_STREAM,
    ".pt2": OCTET_STREAM,
    ".pth": OCTET_STREAM,
    ".ckpt": OCTET_STREAM,
    ".safetensors": OCTET_STREAM,
    ".bin": OCTET_STREAM,
    ".gguf": OCTET_STREAM,
    ".ggml": OCTET_STREAM,
    ".pb": OCTET_STREAM,
    ".tflite": OCTET_STREAM,
    ".engine": OCTET_STREAM,
    ".plan": OCTET_STREAM,
    ".npy": OCTET_STREAM,
    ".npz": OCTET_STREAM,
    ".h5": OCTET_STREAM,
    ".data": OCTET_STREAM,  # ONNX external data
    ".model": OCTET_STREAM,  # sentencepiece
    # configs, tokenizers, model cards
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".py": "text/x-python; charset=utf-8",
    ".tiktoken": "text/plain; charset=utf-8",
    ".zip": "application/zip",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}


def content_type_for(path: str) -> str:
    """The content type of a stored file by its name's extension (case-insensitive)."""
    return CONTENT_TYPES.get(PurePosixPath(path).suffix.lower(), OCTET_STREAM)
