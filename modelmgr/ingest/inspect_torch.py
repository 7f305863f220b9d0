"""TorchScript archives and torch.save state dicts, read without importing torch.

TorchScript: the forward signature comes from the serialized source of the top-level
module's class (``code/__torch__/...py``), parsed with ``ast`` and never executed.
State dicts: the pickle is loaded by ``RestrictedUnpickler`` (stubs only).
"""

from __future__ import annotations

import ast
import io
import pickle
import re
import zipfile
from pathlib import Path

from modelmgr.exceptions import IngestRejected
from modelmgr.ingest.picklescan import (
    MAX_LISTED,
    TORCH_LEGACY_MAGIC,
    RestrictedUnpickler,
    StorageRef,
    UnsafePickle,
    iter_tensors,
    numel,
    pickle_globals,
)
from modelmgr.ingest.torchzip import open_archive

MAX_SOURCE_BYTES = 16 * 1024 * 1024
_CORRUPT = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    RecursionError,
    pickle.UnpicklingError,
)


def inspect_torchscript(local: Path, *, path: str) -> tuple[dict, dict]:
    """Return (signature, inspection) of a TorchScript archive.

    1. The first ``__torch__`` global of data.pkl is the top-level module's class.
    2. Its source file is ``code/<module path>.py``; ast finds ``forward``.
    3. Inputs are forward's parameters after ``self`` (shapes and dtypes unknown);
       outputs follow the return annotation (one per Tuple member).
    4. The tensor element count comes from data.pkl's storage descriptors.
    """
    try:
        archive = open_archive(local, label=path)
    except _CORRUPT as exc:
        raise IngestRejected(f"{path} is not a valid TorchScript archive: {exc}") from None
    with archive.zf:
        try:
            with archive.open("data.pkl") as fh:
                classes = [(m, n) for m, n in pickle_globals(fh) if m.startswith("__torch__")]
            if not classes:
                raise IngestRejected(
                    f"{path} is not a valid TorchScript archive: data.pkl names no scripted module"
                )
            module, cls = classes[0]
            record = "code/" + module.replace(".", "/") + ".py"
            source = archive.read(record, limit=MAX_SOURCE_BYTES).decode("utf-8", "replace")
            parameter_count = _script_parameter_count(archive.read("data.pkl"))
        except IngestRejected:
            raise
        except _CORRUPT as exc:
            raise IngestRejected(f"{path} is not a valid TorchScript archive: {exc}") from None
    args, returns = _forward_signature(source, cls)
    if args is None:
        raise IngestRejected(f"{path}: no forward method found for {module}.{cls}")
    outputs = _outputs(returns)
    signature = {
        "inputs": [{"name": name, "shape": None, "dtype": None} for name, _ in args],
        "outputs": [{"name": name, "shape": None, "dtype": None} for name in outputs],
    }
    rendered = ", ".join(f"{name}: {annotation}" for name, annotation in args)
    inspection = {
        "format": "torchscript",
        "module_class": f"{module}.{cls}",
        "forward": f"forward({rendered}) -> {returns}",
        "parameter_count": parameter_count,
    }
    return signature, inspection


def _forward_signature(source: str, cls: str) -> tuple[list[tuple[str, str]] | None, str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _forward_by_regex(source)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "forward":
                    params = item.args.posonlyargs + item.args.args + item.args.kwonlyargs
                    args = [
                        (a.arg, ast.unparse(a.annotation) if a.annotation else "Any")
                        for a in params[1:]
                    ]
                    returns = ast.unparse(item.returns) if item.returns else "Any"
                    return args, returns
    return None, ""


_FORWARD_RE = re.compile(
    r"def forward\(\s*self[^,)]*,?(?P<args>.*?)\)\s*->\s*(?P<ret>[^:]+):", re.DOTALL
)


def _forward_by_regex(source: str) -> tuple[list[tuple[str, str]] | None, str]:
    match = _FORWARD_RE.search(source)
    if not match:
        return None, ""
    args = []
    for part in _split_top_level(match["args"]):
        name, _, annotation = part.partition(":")
        if name.strip():
            args.append((name.strip(), annotation.strip() or "Any"))
    return args, match["ret"].strip()


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def _outputs(returns: str) -> list[str]:
    match = re.fullmatch(r"Tuple\[(.*)\]", returns.strip())
    if match:
        members = _split_top_level(match[1])
        return [f"output_{index}" for index in range(len(members))]
    return ["output"]


class _ScriptObject:
    """Stands in for every scripted class in data.pkl; keeps nothing but its state."""

    def __setstate__(self, state):
        self.state = state


class _ScriptUnpickler(RestrictedUnpickler):
    def __init__(self, fh):
        super().__init__(fh)
        self.storages: dict[str, StorageRef] = {}

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            return _ScriptObject
        return super().find_class(module, name)

    def persistent_load(self, pid):
        ref = super().persistent_load(pid)
        self.storages[ref.key] = ref
        return ref


def _script_parameter_count(data: bytes) -> int | None:
    """Elements in the archive's storages, or None when data.pkl needs other globals."""
    unpickler = _ScriptUnpickler(_bytes_io(data))
    try:
        unpickler.load()
    except (UnsafePickle, *_CORRUPT):
        return None
    return sum(ref.numel for ref in unpickler.storages.values() if ref.dtype != "untyped")


# --- state dicts -----------------------------------------------------------------------


def inspect_state_dict(local: Path, *, path: str) -> tuple[dict, dict]:
    """Tensor names, shapes and dtypes of a torch.save'd state dict (zip or legacy)."""
    try:
        with local.open("rb") as fh:
            is_zip = fh.read(4) == b"PK\x03\x04"
        obj, storage_sizes = _load_zip(local, path) if is_zip else (_load_legacy(local), None)
        tensors = list(iter_tensors(obj))
    except UnsafePickle as exc:
        raise IngestRejected(
            f"{path} is not a plain state dict: its pickle imports {exc} "
            "(a pickled object that would run code to load)"
        ) from None
    except IngestRejected:
        raise
    except _CORRUPT as exc:
        raise IngestRejected(f"{path} is not a valid PyTorch state dict: {exc}") from None
    if storage_sizes is not None:
        for name, tensor in tensors:
            key = tensor.storage.key if tensor.storage else None
            if key is not None and storage_sizes.get(key) != tensor.storage.nbytes:
                raise IngestRejected(
                    f"{path} is not a valid PyTorch state dict: the storage of tensor "
                    f"{name!r} is missing or truncated"
                )
    listed = [{"name": name, "shape": t.shape, "dtype": t.dtype} for name, t in tensors]
    inspection = {
        "format": "pytorch_state_dict",
        "tensor_count": len(listed),
        "parameter_count": sum(numel(t.shape) for _, t in tensors),
        "dtypes": sorted({t.dtype for _, t in tensors}),
        "tensors": listed[:MAX_LISTED],
        "tensors_truncated": len(listed) > MAX_LISTED,
    }
    return {}, inspection


def _load_zip(local: Path, path: str):
    archive = open_archive(local, label=path)
    with archive.zf:
        obj = RestrictedUnpickler(_bytes_io(archive.read("data.pkl"))).load()
        sizes = {
            name[len("data/") :]: archive.size(name)
            for name in archive.names
            if name.startswith("data/")
        }
    return obj, sizes


def _load_legacy(local: Path):
    """A pre-zip torch.save file: magic, protocol, system info, then the object."""
    with local.open("rb") as fh:
        first = RestrictedUnpickler(fh).load()
        if first != TORCH_LEGACY_MAGIC:
            return first
        for _ in range(2):
            RestrictedUnpickler(fh).load()
        return RestrictedUnpickler(fh).load()


def _bytes_io(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
