"""Read PyTorch pickles without running them.

Two tools, neither imports torch nor calls anything from the pickle:

- ``pickle_globals`` walks the opcodes with ``pickletools.genops`` and lists every
  global the pickle would import. A pickle whose globals are all in
  ``STATE_DICT_GLOBALS`` only rebuilds tensors and dicts: a state dict.
- ``RestrictedUnpickler`` unpickles such a pickle with local stubs in place of the
  allowlisted globals, and storage descriptors in place of tensor data, to read tensor
  names, shapes and dtypes. Any other global raises ``UnsafePickle``.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from math import prod
from typing import Any, BinaryIO

# Legacy typed storages: the element dtype is in the class name.
STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
    "QInt8Storage": "qint8",
    "QInt32Storage": "qint32",
    "QUInt8Storage": "quint8",
    "QUInt4x2Storage": "quint4x2",
    "QUInt2x4Storage": "quint2x4",
}
# torch.<dtype> globals (new dtypes are pickled as UntypedStorage + a dtype global).
TORCH_DTYPES: dict[str, int] = {
    "float64": 8,
    "double": 8,
    "float32": 4,
    "float": 4,
    "float16": 2,
    "half": 2,
    "bfloat16": 2,
    "int64": 8,
    "long": 8,
    "int32": 4,
    "int": 4,
    "int16": 2,
    "short": 2,
    "int8": 1,
    "uint8": 1,
    "uint16": 2,
    "uint32": 4,
    "uint64": 8,
    "bool": 1,
    "complex64": 8,
    "cfloat": 8,
    "complex128": 16,
    "cdouble": 16,
    "complex32": 4,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "float8_e4m3fnuz": 1,
    "float8_e5m2fnuz": 1,
    "float8_e8m0fnu": 1,
    "float4_e2m1fn_x2": 1,
    "qint8": 1,
    "qint32": 4,
    "quint8": 1,
}
ITEMSIZE: dict[str, int] = {**TORCH_DTYPES, "quint4x2": 1, "quint2x4": 1, "untyped": 1}
_DTYPE_ALIASES = {
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "long": "int64",
    "int": "int32",
    "short": "int16",
    "cfloat": "complex64",
    "cdouble": "complex128",
    "untyped": "uint8",
}
MAX_LISTED = 2000
# Legacy (pre-zip) torch.save files start with this number, pickled.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_REBUILDERS = {
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
}
STATE_DICT_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),
        ("torch.storage", "UntypedStorage"),
        ("torch", "UntypedStorage"),
    }
    | {("torch._utils", name) for name in _REBUILDERS}
    | {("torch", name) for name in STORAGE_DTYPES}
    | {("torch", name) for name in TORCH_DTYPES}
)
_STRING_OPS = {
    "UNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
}
_NO_STACK_EFFECT = {"PROTO", "FRAME", "STOP"}


# A state dict's pickle holds no tensor bytes; a longer inline string means a pickled
# object carrying its data (numpy arrays, ...). Scanning stops there instead of
# reading gigabytes into memory.
MAX_INLINE_BYTES = 64 * 1024 * 1024


class UnsafePickle(Exception):
    """The pickle needs a global outside the allowlist (it would run code to load)."""


class PickleTooLarge(ValueError):
    """An opcode argument over MAX_INLINE_BYTES: not scanned, so treated as unsafe."""


class BoundedReader:
    """Refuses single reads over MAX_INLINE_BYTES (what genops does for a long argument)."""

    def __init__(self, fh: BinaryIO):
        self._fh = fh

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > MAX_INLINE_BYTES:
            raise PickleTooLarge(f"an inline value of {size} bytes")
        return self._fh.read(size)

    def readline(self) -> bytes:
        return self._fh.readline(MAX_INLINE_BYTES)


def pickle_globals(fh: BinaryIO) -> list[tuple[str, str]]:
    """List the (module, name) globals one pickle imports, by reading opcodes only.

    ``STACK_GLOBAL`` takes its names from the stack, so the string values pushed
    (directly, through the memo, or by DUP) are tracked; a name that did not come from
    a string opcode is reported as ``("?", "?")``, which no allowlist accepts.
    """
    found: list[tuple[str, str]] = []
    pushed: list[str | None] = []
    memo: dict[int, str | None] = {}
    for opcode, arg, _pos in pickletools.genops(BoundedReader(fh)):
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.append((module, attr))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            if len(pushed) >= 2 and isinstance(pushed[-1], str) and isinstance(pushed[-2], str):
                found.append((pushed[-2], pushed[-1]))
            else:
                found.append(("?", "?"))
            del pushed[-2:]
            pushed.append(None)
        elif name in ("EXT1", "EXT2", "EXT4"):
            found.append(("copyreg-extension", str(arg)))
            pushed.append(None)
        elif name in _STRING_OPS:
            pushed.append(arg if isinstance(arg, str) else None)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = pushed[-1] if pushed else None
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(arg))
        elif name == "DUP":
            pushed.append(pushed[-1] if pushed else None)
        elif name not in _NO_STACK_EFFECT:
            pushed.append(None)
    return found


def disallowed_globals(fh: BinaryIO) -> list[str]:
    """The globals of one pickle that a state dict never needs (empty = state dict)."""
    return sorted(
        {
            f"{module}.{name}"
            for module, name in pickle_globals(fh)
            if (module, name) not in STATE_DICT_GLOBALS
        }
    )


# --- restricted unpickling ------------------------------------------------------------


@dataclass(frozen=True)
class StorageRef:
    key: str
    dtype: str
    numel: int
    location: str

    @property
    def nbytes(self) -> int:
        return self.numel * ITEMSIZE.get(self.dtype, 1)


@dataclass(frozen=True)
class TensorInfo:
    shape: list[int]
    dtype: str
    storage: StorageRef | None


@dataclass(frozen=True)
class _StorageType:
    dtype: str


@dataclass(frozen=True)
class _DType:
    name: str


def _rebuild_tensor(storage, _offset, size, *_rest) -> TensorInfo:
    return _tensor_info(storage, size, None)


def _rebuild_tensor_v3(storage, _offset, size, _stride, _grad, _hooks, dtype, *_rest):
    return _tensor_info(storage, size, dtype.name if isinstance(dtype, _DType) else None)


def _tensor_info(storage, size, dtype: str | None) -> TensorInfo:
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError("a tensor is rebuilt from something that is not a storage")
    shape = [int(dim) for dim in size]
    name = dtype or storage.dtype
    return TensorInfo(shape=shape, dtype=_DTYPE_ALIASES.get(name, name), storage=storage)


def _rebuild_parameter(data, *_rest):
    return data


def _codecs_encode(text, encoding="utf-8"):
    return str(text).encode(encoding)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict with stubs; never imports torch, never runs its code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in STATE_DICT_GLOBALS:
            raise UnsafePickle(f"{module}.{name}")
        if module == "collections":
            return OrderedDict
        if module == "_codecs":
            return _codecs_encode
        if module == "torch._utils":
            if name == "_rebuild_tensor_v3":
                return _rebuild_tensor_v3
            if name.startswith("_rebuild_parameter"):
                return _rebuild_parameter
            return _rebuild_tensor
        if name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        if name == "UntypedStorage":
            return _StorageType("untyped")
        return _DType(name)

    def persistent_load(self, pid: Any) -> StorageRef:
        # zip format: 5-tuple; legacy format adds view metadata as a sixth member
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        _, storage_type, key, location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int):
            raise pickle.UnpicklingError(f"unexpected storage descriptor {pid!r:.80}")
        return StorageRef(
            key=str(key), dtype=storage_type.dtype, numel=numel, location=str(location)
        )


def restricted_load(data: bytes) -> Any:
    return RestrictedUnpickler(io.BytesIO(data)).load()


def iter_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, TensorInfo]]:
    """Flatten nested dicts/lists of TensorInfo into (dotted name, tensor) pairs."""
    if isinstance(obj, TensorInfo):
        yield prefix or "tensor", obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from iter_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield from iter_tensors(value, f"{prefix}.{index}" if prefix else str(index))


def numel(shape: list[int]) -> int:
    return prod(shape) if shape else 1
