"""Django admin: every registry table, searchable and filterable; audit is read-only.

Django's autodiscover imports ``modelmgr.admin``; importing the submodules here
registers every admin. One module per concern:

- ``base``: audited edits, deletes through services, the actions' shared helpers
- ``registry``: tags, registered models, versions, artifact files
- ``version_actions``: activate, validate, verify hashes, archive (on versions)
- ``slots``: slots and their rollback action
- ``audit``: audit trail (read-only) and API tokens
- ``usage``: usage counters (read-only)
- ``imports``: imports from URLs and their cancel/retry actions
- ``providers``: external Ollama / OpenAI-compatible servers and their discover action
"""

from __future__ import annotations

from modelmgr.admin.audit import ApiTokenAdmin, AuditEventAdmin
from modelmgr.admin.base import AuditedAdmin, ServiceDeleteAdmin
from modelmgr.admin.imports import DownloadJobAdmin, cancel_imports, retry_imports
from modelmgr.admin.providers import ProviderAdmin, discover_models
from modelmgr.admin.registry import (
    ArtifactFileAdmin,
    ArtifactFileInline,
    ModelVersionAdmin,
    ModelVersionAdminForm,
    ModelVersionInline,
    RegisteredModelAdmin,
    TagAdmin,
)
from modelmgr.admin.slots import SlotAdmin, SlotAdminForm, rollback_slots
from modelmgr.admin.usage import UsageBucketAdmin
from modelmgr.admin.version_actions import (
    activate_in_slot,
    archive_versions,
    validate_versions,
    verify_hashes,
)

__all__ = [
    "ApiTokenAdmin",
    "ArtifactFileAdmin",
    "ArtifactFileInline",
    "AuditEventAdmin",
    "AuditedAdmin",
    "DownloadJobAdmin",
    "ModelVersionAdmin",
    "ModelVersionAdminForm",
    "ModelVersionInline",
    "ProviderAdmin",
    "RegisteredModelAdmin",
    "ServiceDeleteAdmin",
    "SlotAdmin",
    "SlotAdminForm",
    "TagAdmin",
    "UsageBucketAdmin",
    "activate_in_slot",
    "archive_versions",
    "cancel_imports",
    "discover_models",
    "retry_imports",
    "rollback_slots",
    "validate_versions",
    "verify_hashes",
]
