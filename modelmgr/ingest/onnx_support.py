"""What the worker's onnxruntime can load: the newest ONNX IR version and default-domain
(ai.onnx) opset per onnxruntime release, to warn at upload about a model it would refuse.

The onnx package stamps the newest IR version it knows (onnx 1.23: IR 14) on models it
writes, which an onnxruntime from the same season may not load yet (onnxruntime 1.31:
"Unsupported model IR version: 14, max supported IR version: 13"). Ingest cannot run
onnxruntime (the web process never imports it), so the limits come from this table and
the installed version is read from the package metadata.

Rows are measured, not guessed: build a one-node model with ``onnx.helper``, raise
``ir_version`` and the opset until ``onnxruntime.InferenceSession`` refuses it. A
release missing from the table uses the nearest older row (a newer release only ever
supports more, so the warning errs on the side of caution), and the newest row for
releases newer than the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

# Distributions that install the ``onnxruntime`` module, in order of preference.
DISTRIBUTIONS = ("onnxruntime-gpu", "onnxruntime", "onnxruntime-directml", "onnxruntime-openvino")


@dataclass(frozen=True)
class Support:
    ir_version: int
    opset: int  # the newest ai.onnx opset


# (major, minor) -> limits. Measured on the installed build (see the module docstring).
SUPPORT: dict[tuple[int, int], Support] = {
    (1, 31): Support(ir_version=13, opset=26),
}


def installed_onnxruntime() -> str | None:
    """The installed onnxruntime version (from package metadata; nothing is imported)."""
    for name in DISTRIBUTIONS:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def support_for(version: str) -> tuple[Support, str] | None:
    """The limits for onnxruntime ``version`` and the release they were measured on."""
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return None
    known = sorted(SUPPORT)
    older = [key for key in known if key <= (major, minor)]
    key = older[-1] if older else None
    if key is None:
        return None
    return SUPPORT[key], f"{key[0]}.{key[1]}"


def onnx_warnings(*, ir_version: int, opsets: dict[str, int], path: str) -> list[str]:
    """Warnings for a model the installed onnxruntime is expected to refuse to load."""
    version = installed_onnxruntime()
    found = support_for(version) if version else None
    if found is None:
        return []
    support, _measured = found
    runtime = f"onnxruntime {version}"
    warnings = []
    if ir_version > support.ir_version:
        warnings.append(
            f"{path} has ONNX IR version {ir_version}; the worker's {runtime} loads IR "
            f"version {support.ir_version} at most, so a switch to it will fail. Save the "
            f"model with ir_version={support.ir_version} (onnx.save after setting "
            f"model.ir_version) or upgrade onnxruntime."
        )
    opset = opsets.get("ai.onnx")
    if opset is not None and opset > support.opset:
        warnings.append(
            f"{path} uses ai.onnx opset {opset}; the worker's {runtime} implements opset "
            f"{support.opset} at most, so a switch to it will fail. Export it with "
            f"opset {support.opset} or lower, or upgrade onnxruntime."
        )
    return warnings
