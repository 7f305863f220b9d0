"""Which framework a version's files are, from their content first and extension second.

Content that identifies itself (a torch zip, HDF5, a safetensors header, a pickle)
decides; an extension only claims a format whose content the inspector then verifies
(an ``.onnx`` file that protobuf cannot parse is refused there). Pickles are classified
by reading their opcodes, never by loading them.
"""

from __future__ import annotations

import pickletools
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from modelmgr.exceptions import IngestRejected
from modelmgr.ingest.incoming import IncomingFile
from modelmgr.ingest.paths import clean_relative_path
from modelmgr.ingest.picklescan import (
    TORCH_LEGACY_MAGIC,
    BoundedReader,
    PickleTooLarge,
    disallowed_globals,
)
from modelmgr.ingest.torchzip import ZIP_MAGIC, open_archive
from modelmgr.models import Framework

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
SAFETENSORS_MAX_HEADER = 100_000_000
TORCH_EXTENSIONS = {".pt", ".pth", ".bin", ".ckpt"}
SKLEARN_EXTENSIONS = {".pkl", ".pickle", ".joblib"}
KERAS_EXTENSIONS = {".h5", ".hdf5", ".keras"}
# Which model file becomes the primary when a version holds several.
PRIORITY = [
    Framework.ONNX,
    Framework.TORCH_EXPORT,
    Framework.TORCHSCRIPT,
    Framework.SAFETENSORS,
    Framework.PYTORCH_STATE_DICT,
    Framework.PYTORCH_PICKLE,
    Framework.KERAS,
    Framework.TENSORFLOW,
    Framework.SKLEARN,
]
UNSAFE = {Framework.PYTORCH_PICKLE, Framework.SKLEARN}


@dataclass
class FileKind:
    framework: str | None  # None: not a model by itself (config, tokenizer, weights sidecar)
    unsafe_globals: list[str] = field(default_factory=list)


@dataclass
class Detection:
    framework: str
    primary_path: str
    kinds: dict[str, FileKind]
    unsafe: bool
    detected: str  # what the content says, before a compatible user choice


def sniff_file(path: str, local: Path) -> FileKind:
    """Classify one file (see the module docstring for the order of evidence)."""
    suffix = PurePosixPath(path).suffix.lower()
    with local.open("rb") as fh:
        head = fh.read(16)
    size = local.stat().st_size
    if head[:4] in ZIP_MAGIC:
        kind = _sniff_zip(path, local)
        if kind is not None or suffix not in TORCH_EXTENSIONS | {".pt2"}:
            return kind or FileKind(None)
    if head.startswith(HDF5_MAGIC):
        return FileKind(Framework.KERAS)
    if _looks_like_safetensors(head, size):
        return FileKind(Framework.SAFETENSORS)
    if suffix in SKLEARN_EXTENSIONS:
        return FileKind(Framework.SKLEARN, ["pickle: never unpickled"])
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        if suffix in TORCH_EXTENSIONS:
            return _sniff_raw_pickle(path, local)
        return FileKind(None)
    if suffix == ".onnx":
        return FileKind(Framework.ONNX)
    if suffix == ".pt2":
        return FileKind(Framework.TORCH_EXPORT)
    if suffix == ".safetensors":
        return FileKind(Framework.SAFETENSORS)
    if suffix == ".pb":
        return FileKind(Framework.TENSORFLOW)
    if suffix in KERAS_EXTENSIONS:
        raise IngestRejected(f"{path} has a Keras extension but is not an HDF5 file")
    if suffix in (".pt", ".pth"):
        raise IngestRejected(f"{path} is neither a torch zip archive nor a pickle")
    return FileKind(None)


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= min(size - 8, SAFETENSORS_MAX_HEADER) and head[8:9] == b"{"


def _sniff_zip(path: str, local: Path) -> FileKind | None:
    try:
        archive = open_archive(local, label=path)
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    with archive.zf:
        kind = archive.kind()
        if kind == "pt2":
            return FileKind(Framework.TORCH_EXPORT)
        if kind == "torchscript":
            return FileKind(Framework.TORCHSCRIPT)
        if kind == "pickle":
            try:
                with archive.open("data.pkl") as fh:
                    bad = disallowed_globals(fh)
            except PickleTooLarge as exc:
                return FileKind(Framework.PYTORCH_PICKLE, [f"(not scanned: {exc})"])
            except (ValueError, EOFError, zipfile.BadZipFile, OSError) as exc:
                raise IngestRejected(f"{path} holds a corrupt pickle: {exc}") from None
            return _pickle_kind(bad)
        if archive.prefix == "" and {"config.json", "model.weights.h5"} <= archive.names:
            return FileKind(Framework.KERAS)
    return None


def _sniff_raw_pickle(path: str, local: Path) -> FileKind:
    """A pickle that is not in a zip: a legacy torch.save file or a plain pickle."""
    try:
        with local.open("rb") as fh:
            if _is_torch_legacy_magic(fh):
                bad: list[str] = []
                for _ in range(3):  # protocol version, system info, the object itself
                    bad += disallowed_globals(fh)
            else:
                bad = disallowed_globals(fh)
    except PickleTooLarge as exc:
        return FileKind(Framework.PYTORCH_PICKLE, [f"(not scanned: {exc})"])
    except (ValueError, EOFError) as exc:
        raise IngestRejected(f"{path} is not a valid pickle: {exc}") from None
    return _pickle_kind(bad)


def _is_torch_legacy_magic(fh) -> bool:
    """True when the first pickle of ``fh`` is torch's legacy magic number (stays after it)."""
    start = fh.tell()
    ops = []
    for opcode, arg, _pos in pickletools.genops(BoundedReader(fh)):
        ops.append((opcode.name, arg))
        if len(ops) > 4:  # the magic pickle is PROTO, LONG1, STOP: anything longer is not it
            fh.seek(start)
            return False
    if ("LONG1", TORCH_LEGACY_MAGIC) in ops:
        return True
    fh.seek(start)
    return False


def _pickle_kind(bad_globals: list[str]) -> FileKind:
    if bad_globals:
        return FileKind(Framework.PYTORCH_PICKLE, bad_globals)
    return FileKind(Framework.PYTORCH_STATE_DICT)


# --- the whole version ------------------------------------------------------------------


def framework_choice(raw: str | None) -> str | None:
    """Validate a user-given framework string (None/"" = detect)."""
    if raw is None or raw == "":
        return None
    if raw not in Framework.values:
        allowed = ", ".join(Framework.values)
        raise IngestRejected(f"unknown framework {raw!r}; allowed values: {allowed}")
    if raw == Framework.PROVIDER:
        raise IngestRejected(
            "framework 'provider' is for models a provider runs (discovered through "
            "/api/v1/providers/<name>/discover), not for uploaded files"
        )
    return raw


def detect_version(
    files: list[IncomingFile], *, framework: str | None = None, primary_path: str | None = None
) -> Detection:
    """Detect the framework and the primary file of a version.

    1. Classify every file by content, then extension.
    2. A Hugging Face folder (root config.json + root weights) is one model.
    3. Else the explicit primary path wins; else the model file of highest PRIORITY
       (ties: shallowest path, a file named ``model.*``, then by name).
    4. Reconcile with the user's framework: the same, or a stricter pytorch_pickle for a
       state dict, or anything for unrecognised content (its inspector still checks);
       a contradiction is refused naming both.
    """
    requested = framework_choice(framework)
    if not files:
        raise IngestRejected("a version needs at least one file")
    kinds = {incoming.path: sniff_file(incoming.path, incoming.staged.path) for incoming in files}
    sizes = {incoming.path: incoming.staged.size for incoming in files}
    explicit = _explicit_primary(primary_path, kinds)
    hf_weights = _huggingface_weights(kinds)
    if hf_weights:
        detected = Framework.HUGGINGFACE
        primary = explicit or hf_weights[0]
    elif explicit:
        detected = kinds[explicit].framework or Framework.OTHER
        primary = explicit
    else:
        primary = _best_model_file(kinds) or max(sorted(kinds), key=lambda p: sizes[p])
        detected = kinds[primary].framework or Framework.OTHER

    detected = str(detected)  # the plain value, also in messages
    chosen = detected
    if requested and requested != detected:
        stricter = (
            requested == Framework.PYTORCH_PICKLE and detected == Framework.PYTORCH_STATE_DICT
        )
        if not (stricter or detected == Framework.OTHER):
            raise IngestRejected(
                f"framework {requested!r} contradicts the content: {primary} is {detected!r}"
            )
        chosen = requested
    unsafe = chosen in UNSAFE or (
        chosen == Framework.HUGGINGFACE
        and any(kinds[path].framework == Framework.PYTORCH_PICKLE for path in hf_weights)
    )
    return Detection(
        framework=chosen, primary_path=primary, kinds=kinds, unsafe=unsafe, detected=detected
    )


def _explicit_primary(primary_path: str | None, kinds: dict[str, FileKind]) -> str | None:
    if not primary_path:
        return None
    cleaned = clean_relative_path(primary_path)
    if cleaned not in kinds:
        raise IngestRejected(f"primary path {cleaned!r} is not one of the version's files")
    return cleaned


def _huggingface_weights(kinds: dict[str, FileKind]) -> list[str]:
    """Root weight files of a Hugging Face folder (empty when it is not one)."""
    if "config.json" not in kinds:
        return []
    root = [path for path in sorted(kinds) if "/" not in path]
    safetensors = [p for p in root if kinds[p].framework == Framework.SAFETENSORS]
    bins = [p for p in root if p.startswith("pytorch_model") and p.endswith(".bin")]
    weights = safetensors or bins
    return sorted(weights, key=lambda p: (p != "model.safetensors", p))


def _best_model_file(kinds: dict[str, FileKind]) -> str | None:
    candidates = [path for path, kind in kinds.items() if kind.framework in PRIORITY]
    if not candidates:
        return None

    def rank(path: str) -> tuple:
        pure = PurePosixPath(path)
        return (
            PRIORITY.index(kinds[path].framework),
            len(pure.parts),
            pure.stem.split(".")[0] != "model",
            path,
        )

    return min(candidates, key=rank)
