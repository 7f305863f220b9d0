"""Worker-side domain exceptions (the HTTP status each one answers with is on the class)."""

from __future__ import annotations

from modelmgr.exceptions import ModelmgrError, NotFound


class NotServed(NotFound):
    """A request for a slot the routing table does not hold."""


class InvalidInput(ModelmgrError):
    """Request inputs that do not match the served model's signature."""

    status = 422


class LoadFailed(ModelmgrError):
    """A version that could not be loaded or warmed up (runtime error, wrong signature)."""

    status = 422


class LoadTimeout(LoadFailed):
    status = 504


class InsufficientMemory(ModelmgrError):
    status = 507


class RuntimeUnavailable(ModelmgrError):
    """No runnable graph for the version's framework, or its runtime is not installed."""

    status = 409


class UnsupportedMedia(ModelmgrError):
    status = 415


class BodyTooLarge(ModelmgrError):
    status = 413
