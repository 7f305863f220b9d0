"""Domain exceptions raised by services; each interface maps them to responses once."""

from __future__ import annotations


class ModelmgrError(Exception):
    """Base class. ``status`` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotFound(ModelmgrError):
    status = 404


class Forbidden(ModelmgrError):
    status = 403


class VersionConflict(ModelmgrError):
    """Duplicate version, or a change that conflicts with the current state."""

    status = 409


class ModelNameTaken(VersionConflict):
    """The owner already has a model of that name (possibly created a moment ago by a
    concurrent request: get-or-create callers catch this and use that model)."""


class InUse(ModelmgrError):
    """Deleting or archiving something a slot serves."""

    status = 409


class IngestRejected(ModelmgrError):
    """An artifact that cannot be accepted: corrupt, unsafe path, zip bomb, ..."""

    status = 422


class BadPath(IngestRejected):
    status = 400


class UploadTooLarge(ModelmgrError):
    status = 413


class NotDeployable(ModelmgrError):
    status = 409


class WorkerUnavailable(ModelmgrError):
    status = 503


class StoreUnavailable(ModelmgrError):
    """The artifact store (S3) did not answer or refused a request."""

    status = 503


class IntegrityFailure(ModelmgrError):
    """Stored bytes no longer match their recorded sha256."""

    status = 409
