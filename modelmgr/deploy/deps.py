"""A version's declared Python and packages against what the worker runs.

``python_version`` is a version ("3.11", "3.11.4": the worker's must start with it) or a
specifier (">=3.10,<3.13"). ``dependencies`` are requirement strings ("numpy>=2",
"onnxruntime"). The worker reports its Python and installed distributions at
``GET /environment`` (inference.fit.environment). A package the worker lacks, or has in
a version outside the requirement, fails; a Python that differs is a warning (most
artifacts load across minor versions; pickles may not).
"""

from __future__ import annotations

from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from modelmgr.models import ModelVersion


def _python_problem(wanted: str, have: str) -> str:
    wanted = wanted.strip()
    if not wanted:
        return ""
    try:
        if wanted[0] in "<>=!~":
            ok = Version(have) in SpecifierSet(wanted)
        else:
            ok = have == wanted or have.startswith(wanted.rstrip(".*") + ".")
    except (InvalidSpecifier, InvalidVersion):
        return f"python_version {wanted!r} is neither a version nor a specifier"
    return "" if ok else f"it declares Python {wanted}, the worker runs {have}"


def _package_problem(line: str, packages: dict[str, str]) -> tuple[str, bool]:
    """(problem, is it a failure); ("", False) when met."""
    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        return f"{line!r} is not a requirement (e.g. 'numpy>=2')", False
    if requirement.marker is not None and not requirement.marker.evaluate():
        return "", False
    name = canonicalize_name(requirement.name)
    have = next((v for k, v in packages.items() if canonicalize_name(k) == name), None)
    if have is None:
        return f"{requirement.name} is not installed in the worker", True
    if requirement.specifier and not requirement.specifier.contains(have, prereleases=True):
        return f"{requirement.name} {have} in the worker, {line} wanted", True
    return "", False


def dependency_check(
    version: ModelVersion, status: dict | None, environment: dict | None, why: str
) -> dict[str, Any]:
    deps = [d for d in version.dependencies or [] if isinstance(d, str) and d.strip()]
    details: dict[str, Any] = {"python_version": version.python_version, "dependencies": deps}
    if not deps and not version.python_version:
        return _result("ok", f"{version.ref} declares no Python version or packages", details)
    if environment is None:
        return _result("warning", f"the worker could not be asked: {why}", details)
    have_python = str(environment.get("python_version") or "")
    packages = environment.get("packages") or {}
    details["worker_python"] = have_python
    failures, warnings, met = [], [], []
    python = _python_problem(version.python_version, have_python)
    if python:
        warnings.append(python)
    for line in deps:
        problem, fatal = _package_problem(line, packages)
        if not problem:
            met.append(line)
        elif fatal:
            failures.append(problem)
        else:
            warnings.append(problem)
    details.update(missing_or_wrong=failures, warnings=warnings, met=met)
    if failures:
        return _result("fail", "; ".join(failures + warnings), details)
    if warnings:
        return _result("warning", "; ".join(warnings), details)
    said = f"Python {have_python}" + (f" and {', '.join(met)}" if met else "")
    return _result("ok", f"the worker has {said}", details)


def _result(status: str, message: str, details: Any) -> dict[str, Any]:
    return {"name": "dependencies", "status": status, "message": message, "details": details}
