"""Registry models: the database is the desired state (see ARCHITECTURE.md)."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

VERSION_RE = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
version_validator = RegexValidator(
    VERSION_RE, "a version is 1-64 characters: letters, digits, '.', '_', '+', '-'"
)


class Task(models.TextChoices):
    DETECTOR = "detector"
    ACTION = "action"
    POSE = "pose"
    POLICY = "policy"
    CLASSIFIER = "classifier"
    REGRESSOR = "regressor"
    EMBEDDING = "embedding"
    LLM = "llm"
    OTHER = "other"


class Purpose(models.TextChoices):
    """What a version is chosen for (the catalog; modelmgr.registry.recommend)."""

    SPEED = "speed"
    BALANCED = "balanced"
    QUALITY = "quality"
    SPECIALIZED = "specialized"


class Framework(models.TextChoices):
    ONNX = "onnx", "ONNX"
    TORCHSCRIPT = "torchscript", "TorchScript"
    TORCH_EXPORT = "torch_export", "torch.export (.pt2)"
    SAFETENSORS = "safetensors", "safetensors"
    PYTORCH_STATE_DICT = "pytorch_state_dict", "PyTorch state_dict"
    PYTORCH_PICKLE = "pytorch_pickle", "PyTorch pickled module"
    KERAS = "keras", "Keras (.h5)"
    TENSORFLOW = "tensorflow", "TensorFlow (.pb)"
    SKLEARN = "sklearn", "scikit-learn (pickle)"
    HUGGINGFACE = "huggingface", "Hugging Face folder"
    OTHER = "other", "other"


class Tag(models.Model):
    name = models.SlugField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RegisteredModelQuerySet(models.QuerySet):
    def visible_to(self, user) -> RegisteredModelQuerySet:
        """Owners see their own models; staff see all."""
        if user.is_staff:
            return self
        return self.filter(owner=user)


class RegisteredModel(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="registered_models"
    )
    name = models.SlugField(max_length=100)
    task = models.CharField(max_length=20, choices=Task.choices, default=Task.OTHER)
    framework = models.CharField(max_length=32, choices=Framework.choices, blank=True)
    description = models.TextField(blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="models")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RegisteredModelQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_model_name_per_owner"),
        ]

    def __str__(self) -> str:
        return self.name

    def latest_available_version(self) -> ModelVersion | None:
        return self.versions.available().order_by("-created_at", "-id").first()


class VersionStatus(models.TextChoices):
    PENDING = "pending"
    VALIDATING = "validating"
    AVAILABLE = "available"
    ERROR = "error"
    ARCHIVED = "archived"


class ModelVersionQuerySet(models.QuerySet):
    def available(self) -> ModelVersionQuerySet:
        return self.filter(status=VersionStatus.AVAILABLE)

    def deployable(self) -> ModelVersionQuerySet:
        """What ModelVersion.is_deployable() says, as a filter."""
        return self.available().filter(Q(unsafe=False) | Q(trusted=True))

    def visible_to(self, user) -> ModelVersionQuerySet:
        if user.is_staff:
            return self
        return self.filter(model__owner=user)


class ModelVersion(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=64, validators=[version_validator])
    status = models.CharField(
        max_length=16, choices=VersionStatus.choices, default=VersionStatus.PENDING
    )
    framework = models.CharField(max_length=32, choices=Framework.choices, blank=True)
    description = models.TextField(blank=True)
    # sha256 over the sorted "path\0sha256" lines of the version's files.
    content_hash = models.CharField(max_length=64, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    # {"inputs": [{"name", "shape", "dtype"}], "outputs": [...]}; shapes hold ints,
    # symbolic names (str) or null for unknown dims.
    signature = models.JSONField(default=dict, blank=True)
    # What inspection read besides the signature: opset, parameter count, tensors, ...
    inspection = models.JSONField(default=dict, blank=True)
    train_accuracy = models.FloatField(null=True, blank=True)
    val_accuracy = models.FloatField(null=True, blank=True)
    test_accuracy = models.FloatField(null=True, blank=True)
    train_loss = models.FloatField(null=True, blank=True)
    python_version = models.CharField(max_length=32, blank=True)
    dependencies = models.JSONField(default=list, blank=True)
    min_vram_mb = models.PositiveIntegerField(null=True, blank=True)
    quantization = models.CharField(max_length=32, blank=True)
    # Catalog (seeds 001/004): what a user picks a model by. parameter_count is derived:
    # the weights' tensor sizes, else the given parameter_size ("7B"); it is what the
    # max_params filter and the recommendation compare.
    family = models.CharField(max_length=64, blank=True, db_index=True)
    parameter_size = models.CharField(max_length=16, blank=True)
    parameter_count = models.BigIntegerField(null=True, blank=True)
    purpose = models.CharField(max_length=16, choices=Purpose.choices, blank=True)
    recommended_use = models.CharField(max_length=500, blank=True)
    source_uri = models.CharField(max_length=2000, blank=True)
    production_ready = models.BooleanField(default=False)
    # Pickle-based artifacts: stored, never unpickled unless an administrator trusts them.
    unsafe = models.BooleanField(default=False)
    trusted = models.BooleanField(default=False)
    # Desired state, like Slot.active_version: the worker converges to it (inference.pins).
    pinned = models.BooleanField(
        default=False,
        help_text="keep loaded in the worker even when no slot serves it; never evicted",
    )
    error = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="unique_version_per_model"),
        ]

    def __str__(self) -> str:
        return self.ref

    @property
    def ref(self) -> str:
        return f"{self.model.name}@{self.version}"

    @property
    def primary_file(self) -> ArtifactFile | None:
        return self.files.filter(is_primary=True).first()

    def is_deployable(self) -> bool:
        return self.status == VersionStatus.AVAILABLE and (not self.unsafe or self.trusted)


class ArtifactFile(models.Model):
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1024)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    content_type = models.CharField(max_length=128, default="application/octet-stream")
    is_primary = models.BooleanField(default=False)

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(fields=["version", "path"], name="unique_path_per_version"),
            models.UniqueConstraint(
                fields=["version"],
                condition=Q(is_primary=True),
                name="one_primary_file_per_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version_id}:{self.path}"


class Slot(models.Model):
    """A serving role; its active_version is the desired state the worker converges to."""

    name = models.SlugField(max_length=64, unique=True)
    task = models.CharField(max_length=20, choices=Task.choices, default=Task.OTHER)
    description = models.TextField(blank=True)
    # Optional contract on the signature: {"inputs": [...], "outputs": [...]} as in
    # ModelVersion.signature; a version must match names, dtypes and fixed dims.
    contract = models.JSONField(default=dict, blank=True)
    active_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="active_in_slots",
    )
    previous_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    canary_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="canary_in_slots",
    )
    canary_share = models.FloatField(default=0.0, validators=[MinValueValidator(0.0)])
    # Dynamic batching on the worker (inference.batching); 0 = off. Only for versions
    # whose signature has a dynamic first dimension (modelmgr.deploy.batching).
    max_batch_size = models.PositiveIntegerField(default=0)
    max_queue_delay_us = models.PositiveIntegerField(default=1000)
    preferred_batch_sizes = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):  # noqa: ARG002 - append-only
        raise PermissionError("audit events are append-only")

    def delete(self):
        raise PermissionError("audit events are append-only")


class AuditEvent(models.Model):
    """Append-only history of every change; written in the same transaction as the change."""

    class Outcome(models.TextChoices):
        OK = "ok"
        ERROR = "error"
        # Asked for and not done: a switch or rollback refused before anything changed.
        REFUSED = "refused"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=32, db_index=True)
    target = models.CharField(max_length=300, db_index=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.OK)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit events are append-only")


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked=False)


class ApiToken(models.Model):
    """A robot's bearer token. Only its sha256 is stored; the token is shown once."""

    class Scope(models.TextChoices):
        READ = "read"
        WRITE = "write"

    PREFIX = "mm_"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    # Slot names the token may predict on; empty = every slot. A robot's token should
    # reach only its own slots.
    slots = models.JSONField(default=list, blank=True)
    revoked = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.user} / {self.name}"

    @staticmethod
    def hash_token(raw: str) -> str:
        # Tokens carry 256 random bits, so a fast hash is enough (no password KDF needed).
        return hashlib.sha256(raw.encode()).hexdigest()

    @classmethod
    def generate(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def allows_slot(self, slot: str) -> bool:
        return not self.slots or slot in self.slots

    def slot_refusal(self, slot: str) -> str:
        """Why this token may not use ``slot`` (the 403's detail), or ""."""
        return self.slot_refusal_of(self.name, self.slots, slot)

    @staticmethod
    def slot_refusal_of(name: str, slots, slot: str) -> str:
        """The same for a token known by name and slots (the worker's cached copy)."""
        if not slots or slot in slots:
            return ""
        return f"token {name!r} may not use slot {slot!r} (it is limited to {', '.join(slots)})"


# Fixed latency histogram bounds (ms), log-spaced: buckets add up across rows, so
# percentiles over any period come from summed histograms without keeping samples.
LATENCY_BUCKETS_MS: tuple[float, ...] = tuple(
    round(0.01 * (1.25**i), 4) for i in range(80)
)  # 0.01 ms .. ~570 s


class UsageBucket(models.Model):
    """Per-minute usage of one version in one slot, flushed by the worker."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="usage")
    slot_name = models.CharField(max_length=64, db_index=True)
    minute = models.DateTimeField(db_index=True)
    count = models.PositiveIntegerField(default=0)
    # errors: the model (or the worker) failed; refused: the client's request was refused
    # (bad inputs, 4xx) before the model ran. A client's typo is not a model error.
    errors = models.PositiveIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    total_ms = models.FloatField(default=0.0)
    min_ms = models.FloatField(null=True)
    max_ms = models.FloatField(null=True)
    # counts per LATENCY_BUCKETS_MS bound (+1 overflow bucket)
    histogram = models.JSONField(default=list)
    last_used = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-minute"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "slot_name", "minute"], name="one_usage_bucket_per_minute"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.slot_name} {self.version_id} @ {self.minute:%Y-%m-%d %H:%M}"


class DownloadState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLED = "cancelled"
    FAILED = "failed"
    DONE = "done"


class DownloadJobQuerySet(models.QuerySet):
    def visible_to(self, user) -> DownloadJobQuerySet:
        """Owners see their own imports; staff see all."""
        if user.is_staff:
            return self
        return self.filter(owner=user)

    def active(self) -> DownloadJobQuerySet:
        return self.filter(state__in=(DownloadState.QUEUED, DownloadState.RUNNING))


class DownloadJob(models.Model):
    """An import of a model file from an http(s) URL (modelmgr.imports).

    The partial file survives restarts: a job whose lease (claimed_by + heartbeat_at)
    expired is claimed again and resumes with a Range request guarded by If-Range.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="download_jobs"
    )
    model_name = models.SlugField(max_length=100)
    version = models.CharField(max_length=64, blank=True)
    task = models.CharField(max_length=20, choices=Task.choices, blank=True)
    url = models.CharField(max_length=2000)
    expected_sha256 = models.CharField(max_length=64, blank=True)
    state = models.CharField(
        max_length=16,
        choices=DownloadState.choices,
        default=DownloadState.QUEUED,
        db_index=True,
    )
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    speed_bps = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    filename = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    partial_path = models.CharField(max_length=1024, blank=True)
    # Validators of the source, sent back as If-Range so a resume never splices two
    # different files together.
    etag = models.CharField(max_length=255, blank=True)
    last_modified = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    result_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_by = models.CharField(max_length=128, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = DownloadJobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"import {self.pk} {self.model_name} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in (DownloadState.QUEUED, DownloadState.RUNNING)
