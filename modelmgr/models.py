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
    # Served by an external provider (modelmgr.providers): no files, the worker proxies.
    PROVIDER = "provider", "external provider"
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
    # Kept by database triggers in the same transaction as every version insert, delete
    # and status change (modelmgr.registry.counters): naming a model never counts or
    # scans its versions. Never written by Django (see save()).
    version_count = models.PositiveIntegerField(default=0, editable=False)
    latest_version = models.CharField(
        max_length=64, blank=True, editable=False, help_text='newest available ("": none)'
    )

    objects = RegisteredModelQuerySet.as_manager()

    # Columns only the triggers write: a save() from an instance read earlier must not
    # put back a count that versions created since have changed.
    TRIGGER_FIELDS = ("version_count", "latest_version")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_model_name_per_owner"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        adding = self._state.adding or self.pk is None
        if not adding and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in self.TRIGGER_FIELDS
            ]
        super().save(*args, **kwargs)

    def latest_available_version(self) -> ModelVersion | None:
        return self.versions.available().order_by("-created_at", "-id").first()


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible (vLLM, llama.cpp, a hosted API)"
    OLLAMA = "ollama", "Ollama"


class Provider(models.Model):
    """An external server that runs language models (modelmgr.providers).

    Its models are discovered into the registry as versions that are provided, not
    stored (``ModelVersion.provider``); a slot serving one makes the worker proxy
    generation to it. The API key is sent to the provider, so it is stored as given
    (never shown back in full: ``masked_key``).
    """

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    base_url = models.CharField(max_length=2000)
    api_key = models.CharField(max_length=1000, blank=True)
    description = models.TextField(blank=True)
    # Discovered models are registered under this user.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="providers"
    )
    discovered_at = models.DateTimeField(null=True, blank=True)
    discovery_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def masked_key(self) -> str:
        key = self.api_key
        if not key:
            return ""
        if len(key) < 12:
            return "\u2026"
        return f"{key[:3]}\u2026{key[-4:]}"


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
    # Language models: seconds an idle loaded copy that no slot serves and nobody pinned
    # stays in the worker (Ollama's keep_alive; negative = forever; null = the
    # MODELMGR_LLM_KEEP_ALIVE default).
    keep_alive_s = models.FloatField(
        null=True,
        blank=True,
        help_text="language models: idle seconds before an unserved, unpinned copy is "
        "unloaded (negative = forever; empty = MODELMGR_LLM_KEEP_ALIVE)",
    )
    error = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Provided, not stored: the provider runs it under provider_model (its own name).
    provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.PROTECT, related_name="versions"
    )
    provider_model = models.CharField(max_length=300, blank=True)
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
        indexes = [
            # A model's newest available version (bare-name resolution, the triggers in
            # modelmgr.registry.counters) and its pages filtered by status.
            models.Index(
                fields=["model", "status", "created_at", "id"], name="version_newest_by_status"
            ),
            # A model's version pages, newest first (keyset on created_at, id).
            models.Index(fields=["model", "created_at", "id"], name="version_newest"),
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


class BlobBlocks(models.Model):
    """The sha256 of each ``block_bytes`` block of a blob, in order (modelmgr.blocks).

    A blob's own sha256 covers all of it, so checking a Range against it means reading the
    whole blob. With these, a Range is checked block by block. They live here, not beside
    the blob, so bytes rewritten in the store (an S3 bucket) by anything but modelmgr
    cannot bring digests of their own. Keyed by content: a row is right for any blob with
    that sha256, whoever stored it.
    """

    DIGEST = 32  # bytes of one sha256

    sha256 = models.CharField(max_length=64, primary_key=True)
    block_bytes = models.PositiveIntegerField()
    digests = models.BinaryField()  # DIGEST bytes per block; the last block may be short

    def __str__(self) -> str:
        return f"{self.sha256} ({len(self.digests) // self.DIGEST} blocks)"

    def covers(self, size: int) -> bool:
        """The right number of digests for a blob of ``size`` bytes."""
        return len(self.digests) == -(-size // self.block_bytes) * self.DIGEST

    def digest(self, index: int) -> bytes:
        return bytes(self.digests[index * self.DIGEST : (index + 1) * self.DIGEST])


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
    # Mirrored every request, its answers never returned (modelmgr.deploy.canary).
    shadow_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="shadow_in_slots",
    )
    # Dynamic batching on the worker (inference.batching); 0 = off. Only for versions
    # whose signature has a dynamic first dimension (modelmgr.deploy.batching).
    max_batch_size = models.PositiveIntegerField(default=0)
    max_queue_delay_us = models.PositiveIntegerField(default=1000)
    preferred_batch_sizes = models.JSONField(default=list, blank=True)
    # --- validation before a switch (modelmgr.deploy.gate) ---
    # Thresholds on a version's metrics, {"val_accuracy": ">= 0.9"}; a version that fails
    # one is refused unless the switch is forced. A production slot also needs
    # production_ready versions.
    quality_gate = models.JSONField(default=dict, blank=True)
    production = models.BooleanField(default=False)
    # --- end validation before a switch ---
    # Generations at once on a language model slot, and requests that may wait for a
    # place (modelmgr.deploy.llm_limits): 0 / None = MODELMGR_LLM_NUM_PARALLEL /
    # MODELMGR_LLM_MAX_QUEUE; a max queue of 0 lets no one wait.
    llm_num_parallel = models.PositiveIntegerField(default=0)
    llm_max_queue = models.PositiveIntegerField(null=True, blank=True, default=None)
    # Placement (modelmgr.deploy.fleet): "" = every worker serves the slot; else only the
    # workers of this group (MODELMGR_WORKER_GROUP) load it.
    worker_group = models.CharField(
        max_length=64, blank=True, default="", validators=[RegexValidator(r"^[-a-zA-Z0-9_]*$")]
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def placed_on(self, group: str) -> bool:
        """Whether a worker of ``group`` serves this slot."""
        return not self.worker_group or self.worker_group == group


class Worker(models.Model):
    """An inference worker that registered itself (inference.registration) and
    heartbeats; one that missed MODELMGR_WORKER_DOWN_AFTER heartbeats is down."""

    name = models.CharField(max_length=128, unique=True)
    control_url = models.CharField(max_length=500)
    serve_url = models.CharField(max_length=500, blank=True)
    group = models.CharField(max_length=64, default="default")
    device = models.CharField(max_length=64, blank=True)
    device_name = models.CharField(max_length=200, blank=True)
    memory_budget_bytes = models.BigIntegerField(default=0)
    memory_free_bytes = models.BigIntegerField(default=0)
    pid = models.PositiveIntegerField(default=0)
    heartbeat_s = models.FloatField(default=5.0)
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(db_index=True)

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
# The same log-spaced bounds for a language model's generation speed (tokens/s).
TOKENS_PER_S_BUCKETS: tuple[float, ...] = LATENCY_BUCKETS_MS  # 0.01 .. ~570,000 tokens/s


class UsageFigures(models.Model):
    """What the worker counts of one version in one slot: added up per minute
    (UsageBucket) and over all time (UsageTotal), in the same transaction."""

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
    # Language models (0 / empty for tensor models): tokens of every generation that
    # started; time to first token (ms, over LATENCY_BUCKETS_MS) and decode speed
    # (tokens/s, over TOKENS_PER_S_BUCKETS) of the successful ones, as histograms
    # (+1 overflow bucket; [] when none) that add up across rows like ``histogram``.
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    ttft_total_ms = models.FloatField(default=0.0)
    ttft_min_ms = models.FloatField(null=True)
    ttft_max_ms = models.FloatField(null=True)
    ttft_histogram = models.JSONField(default=list)
    tps_min = models.FloatField(null=True)
    tps_max = models.FloatField(null=True)
    tps_histogram = models.JSONField(default=list)

    class Meta:
        abstract = True


# The figures a usage row stores, UsageBucket and UsageTotal alike: what the worker's
# flush merges into a row and what the statistics read back.
USAGE_FIGURES: tuple[str, ...] = tuple(f.name for f in UsageFigures._meta.fields)


class UsageBucket(UsageFigures):
    """Per-minute usage of one version in one slot, flushed by the worker."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="usage")
    slot_name = models.CharField(max_length=64, db_index=True)
    minute = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-minute"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "slot_name", "minute"], name="one_usage_bucket_per_minute"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.slot_name} {self.version_id} @ {self.minute:%Y-%m-%d %H:%M}"


class UsageTotal(UsageFigures):
    """All-time usage of one version in one slot: the sum of its UsageBucket rows, kept
    as they are written, so a version's page and comparison read one row per slot
    however long the version has served (a month in one slot is 43,200 buckets)."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="usage_totals")
    slot_name = models.CharField(max_length=64)
    # A minute's counts fit 32 bits; years of them may not (1,000 requests/s pass
    # 2**31 in 25 days).
    count = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    refused = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["slot_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "slot_name"], name="one_usage_total_per_slot"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.slot_name} {self.version_id} (all time)"


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


class WatchState(models.TextChoices):
    RUNNING = "running"
    PASSED = "passed"  # the window ended within the thresholds: the version stays
    INCONCLUSIVE = "inconclusive"  # the window ended with fewer than min_requests
    ROLLED_BACK = "rolled_back"  # a threshold was crossed: rolled back automatically
    ROLLBACK_FAILED = "rollback_failed"  # crossed, but the rollback itself failed
    SUPERSEDED = "superseded"  # the slot was switched away from the version meanwhile
    ABANDONED = "abandoned"  # the process watching it stopped before a verdict


class SwitchWatch(models.Model):
    """A health-gated switch's watch window over the version it switched a slot to
    (modelmgr.deploy.watch): figures measured from UsageBucket rows, and the verdict."""

    slot = models.ForeignKey(Slot, on_delete=models.CASCADE, related_name="watches")
    version = models.ForeignKey(
        ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    previous_version = models.ForeignKey(
        ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    version_ref = models.CharField(max_length=300)
    previous_ref = models.CharField(max_length=300)
    switch_id = models.CharField(max_length=32, blank=True)
    # {"window_s", "max_error_rate", "max_p95_ratio", "min_requests"}
    thresholds = models.JSONField(default=dict)
    # The previous version's figures before the switch ({"p95_ms", "count", ...}), and the
    # new version's usage already counted then (subtracted from every measure).
    baseline = models.JSONField(default=dict)
    offset = models.JSONField(default=dict)
    figures = models.JSONField(default=dict, blank=True)
    state = models.CharField(
        max_length=16, choices=WatchState.choices, default=WatchState.RUNNING, db_index=True
    )
    verdict = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True)
    runner = models.CharField(max_length=128, blank=True)  # host.pid of the watching process
    started_at = models.DateTimeField()
    deadline_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"watch {self.pk} {self.slot_id} {self.version_ref} ({self.state})"


class VersionProfile(models.Model):
    """A measured profile of a version on a worker (modelmgr.deploy.profile): warm
    latency percentiles and throughput per batch size, load time and memory. Kept per
    run; the newest one is the version's profile."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="profiles")
    device = models.CharField(max_length=64)  # "cpu", "cuda:0"
    device_name = models.CharField(max_length=200, blank=True)
    worker_id = models.CharField(max_length=200, blank=True)
    runtime = models.CharField(max_length=64, blank=True)
    provider = models.CharField(max_length=200, blank=True)
    dynamic_batch = models.BooleanField(default=False)
    load_ms = models.FloatField(default=0.0)
    # What the pool counts for the copy (runtime-reported, declared or estimated), and
    # the growth of the worker's RSS (CPU) or CUDA allocation across load and runs.
    memory_bytes = models.BigIntegerField(default=0)
    measured_bytes = models.BigIntegerField(default=0)
    # [{"batch_size", "iterations", "p50_ms", "p95_ms", "p99_ms", "mean_ms",
    #   "throughput_per_s", "seconds"}], by batch size
    results = models.JSONField(default=list)
    duration_s = models.FloatField(default=0.0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"profile of {self.version_id} on {self.device} @ {self.created_at:%Y-%m-%d %H:%M}"

    def at_batch(self, batch_size: int) -> dict | None:
        return next((r for r in self.results if r.get("batch_size") == batch_size), None)
