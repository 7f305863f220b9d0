"""modelmgr settings: everything comes from the environment, with embedded defaults.

Embedded default: SQLite + local artifact folder + in-memory channel layer.
DATABASE_URL switches to PostgreSQL, REDIS_URL to the Redis channel layer.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from modelmgr.env import env_bool, env_float, env_int, env_list, env_str
from modelmgr.keep_alive import BadKeepAlive, keep_alive_seconds
from modelmgr.s3_settings import s3_artifact_storage


def _keep_alive_setting(name: str, default: str) -> float:
    try:
        return keep_alive_seconds(env_str(name, default), field=name)
    except BadKeepAlive as exc:
        raise ImproperlyConfigured(exc.detail) from None


BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MODELMGR_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("SECRET_KEY", "modelmgr-insecure-dev-key-change-me-in-production")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Under /api/ a refused CSRF check is JSON like every other API answer.
CSRF_FAILURE_VIEW = "modelmgr.api.fallback.csrf_failure"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "channels",
    "ninja",
    "modelmgr",
    "inference",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Under /api/ every error answer is JSON, whichever layer made it.
    "modelmgr.api.fallback.ApiJsonErrorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "modelmgr.urls"
# Threads that run the web process's sync requests, each request start to end on one
# of them (modelmgr.asgi_handler): how many sync requests run at once.
MODELMGR_WEB_THREADS = env_int("MODELMGR_WEB_THREADS", 8)
ASGI_APPLICATION = "modelmgr.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
EMBEDDED_DEFAULT = not DATABASE_URL
# Seconds a thread keeps its database connection between requests (0: a new one per
# request). Opening a SQLite connection (its PRAGMAs, Django's SQL functions) cost about
# a millisecond per request (benchmarks/registry.py).
DB_CONN_MAX_AGE = env_int("MODELMGR_DB_CONN_MAX_AGE", 60)
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=DB_CONN_MAX_AGE)}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(VAR_DIR / "modelmgr.sqlite3")),
            "OPTIONS": {
                # WAL keeps the worker's reads from blocking the web process's writes.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            "CONN_MAX_AGE": DB_CONN_MAX_AGE,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- channel layer --------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- storage --------------------------------------------------------------------
ARTIFACT_ROOT = Path(env_str("MODELMGR_ARTIFACT_ROOT", str(VAR_DIR / "artifacts")))
# Staging must sit on the same filesystem as ARTIFACT_ROOT so a finished upload
# is committed with one rename, never a second copy.
STAGING_ROOT = Path(env_str("MODELMGR_STAGING_ROOT", str(ARTIFACT_ROOT / ".staging")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artifacts": {
        "BACKEND": env_str(
            "MODELMGR_ARTIFACT_STORAGE", "django.core.files.storage.FileSystemStorage"
        ),
        "OPTIONS": {"location": str(ARTIFACT_ROOT)},
    },
}

# MODELMGR_STORAGE=s3://bucket/prefix puts the blobs on an S3-compatible service instead
# (modelmgr.storage_s3; endpoint, region and keys from the environment, see README).
# Staging stays local: an upload is staged (and hashed) here, then uploaded once.
MODELMGR_STORAGE = env_str("MODELMGR_STORAGE", "")
if MODELMGR_STORAGE.startswith("s3:"):
    STORAGES["artifacts"] = s3_artifact_storage(MODELMGR_STORAGE)
elif MODELMGR_STORAGE not in ("", "file", "local"):
    raise ImproperlyConfigured(
        f"MODELMGR_STORAGE={MODELMGR_STORAGE!r}: use s3://bucket/prefix, or leave it unset "
        "for local files (MODELMGR_ARTIFACT_ROOT)"
    )
# Multipart part size of uploads to S3 (one part is held in memory while it is sent).
# S3 (and SeaweedFS) refuse parts under 5 MiB but the last, and allow 10,000 parts: the
# default sends files up to 160 GiB.
MODELMGR_S3_PART_BYTES = env_int("MODELMGR_S3_PART_BYTES", 16 * 1024 * 1024)
if not 5 * 1024**2 <= MODELMGR_S3_PART_BYTES <= 5 * 1024**3:
    raise ImproperlyConfigured("MODELMGR_S3_PART_BYTES must be from 5 MiB to 5 GiB (S3's limits)")
# The sha256 of each block of this size is recorded per blob (modelmgr.blocks): on S3 at
# upload, on any store by the first Range or verify that hashes the blob whole. A Range
# then reads and checks only the blocks that cover it (at most two blocks more than
# asked). 32 bytes of digest per block are kept in the database.
MODELMGR_RANGE_BLOCK_BYTES = env_int("MODELMGR_RANGE_BLOCK_BYTES", 4 * 1024 * 1024)
if not 64 * 1024 <= MODELMGR_RANGE_BLOCK_BYTES <= 1024**3:
    raise ImproperlyConfigured("MODELMGR_RANGE_BLOCK_BYTES must be from 64 KiB to 1 GiB")

# The store lock (modelmgr.storage.store_lock) is held by ingest from reusing or putting a
# blob until its rows commit, and by collectors around check + unlink. How long one waits
# for it on PostgreSQL (on SQLite the database's busy timeout applies).
MODELMGR_STORE_LOCK_TIMEOUT_S = env_float("MODELMGR_STORE_LOCK_TIMEOUT_S", 60.0)
# Each web process sweeps leftovers this often (0 = never; `manage.py store_sweep` by
# hand): staging files and unreferenced blobs older than MODELMGR_STORE_SWEEP_AGE_S.
MODELMGR_STORE_SWEEP_INTERVAL_S = env_float("MODELMGR_STORE_SWEEP_INTERVAL_S", 3600.0)
MODELMGR_STORE_SWEEP_AGE_S = env_float("MODELMGR_STORE_SWEEP_AGE_S", 86400.0)

# Uploads are written to staging through O_DIRECT where the filesystem takes it: on a VM,
# buffered writes of a new big file fault on every fresh page-cache page
# (modelmgr.staging_pipeline). Off: ordinary buffered writes.
MODELMGR_STAGING_DIRECT_IO = env_bool("MODELMGR_STAGING_DIRECT_IO", True)

# Every file upload is streamed to staging with its sha256 computed in the same pass.
FILE_UPLOAD_HANDLERS = ["modelmgr.ingest.upload.StagingUploadHandler"]
FILE_UPLOAD_TEMP_DIR = str(STAGING_ROOT)
STAGING_ROOT.mkdir(parents=True, exist_ok=True)

# --- ingest limits ----------------------------------------------------------------
MODELMGR_MAX_UPLOAD_BYTES = env_int("MODELMGR_MAX_UPLOAD_BYTES", 20 * 1024**3)
MODELMGR_ZIP_MAX_FILES = env_int("MODELMGR_ZIP_MAX_FILES", 10_000)
MODELMGR_ZIP_MAX_TOTAL_BYTES = env_int("MODELMGR_ZIP_MAX_TOTAL_BYTES", 50 * 1024**3)
MODELMGR_ZIP_MAX_RATIO = env_float("MODELMGR_ZIP_MAX_RATIO", 200.0)
MODELMGR_STREAM_CHUNK_BYTES = env_int("MODELMGR_STREAM_CHUNK_BYTES", 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- auth -----------------------------------------------------------------------
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/settings"
LOGOUT_REDIRECT_URL = "/login/"
AUTH_PASSWORD_VALIDATORS = (
    []
    if EMBEDDED_DEFAULT
    else [
        {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    ]
)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"client_errors_one_line": {"()": "modelmgr.logs.ClientErrorsOneLine"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["client_errors_one_line"]}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every request at INFO: one line per worker status call, every few
        # seconds. HTTPX_LOG_LEVEL=INFO brings them back.
        "httpx": {"level": env_str("HTTPX_LOG_LEVEL", "WARNING")},
        "httpcore": {"level": "WARNING"},
    },
}

# --- imports (modelmgr.imports: models fetched from http(s) URLs) ---------------------
# Hosts an import may fetch from (redirect targets included): exact names, "*.example.com"
# for subdomains, or CIDRs; empty = any public host.
MODELMGR_IMPORT_ALLOWED_HOSTS = env_list("MODELMGR_IMPORT_ALLOWED_HOSTS", [])
# Private, loopback, link-local and CGNAT addresses are refused (SSRF) unless this is true
# or the host (name, "*.suffix" or CIDR) is listed in ALLOWED_PRIVATE_HOSTS. Cloud
# metadata addresses need an explicit ALLOWED_PRIVATE_HOSTS entry even then.
MODELMGR_IMPORT_ALLOW_PRIVATE = env_bool("MODELMGR_IMPORT_ALLOW_PRIVATE", False)
# Entries name a port ("127.0.0.1:9000", "mirror.internal:*"); a bare host opens only the
# scheme's default port (modelmgr/imports/addresses.py).
MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = env_list("MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS", [])
# The web process's own port, never importable from a private address (the running
# server notes its real port too; this covers other processes such as `manage.py`).
MODELMGR_WEB_PORT = env_int("MODELMGR_WEB_PORT", 8000)
MODELMGR_IMPORT_MAX_BYTES = env_int("MODELMGR_IMPORT_MAX_BYTES", MODELMGR_MAX_UPLOAD_BYTES)
MODELMGR_IMPORT_MAX_REDIRECTS = env_int("MODELMGR_IMPORT_MAX_REDIRECTS", 5)
# Start the background runner in the web process (off in tests: they drive it directly).
MODELMGR_IMPORT_RUNNER = env_bool("MODELMGR_IMPORT_RUNNER", True)
MODELMGR_IMPORT_CONCURRENCY = env_int("MODELMGR_IMPORT_CONCURRENCY", 2)
# A running job whose heartbeat is older than this is taken over by another process (the
# runner refreshes the heartbeats of its jobs every min(POLL, LEASE/4) seconds).
MODELMGR_IMPORT_LEASE_SECONDS = env_float("MODELMGR_IMPORT_LEASE_SECONDS", 60.0)
MODELMGR_IMPORT_POLL_SECONDS = env_float("MODELMGR_IMPORT_POLL_SECONDS", 5.0)
MODELMGR_IMPORT_MAX_ATTEMPTS = env_int("MODELMGR_IMPORT_MAX_ATTEMPTS", 5)
MODELMGR_IMPORT_RETRY_BACKOFF_SECONDS = env_float("MODELMGR_IMPORT_RETRY_BACKOFF_SECONDS", 2.0)
MODELMGR_IMPORT_PROGRESS_INTERVAL = env_float("MODELMGR_IMPORT_PROGRESS_INTERVAL", 0.25)
MODELMGR_IMPORT_CONNECT_TIMEOUT = env_float("MODELMGR_IMPORT_CONNECT_TIMEOUT", 10.0)
MODELMGR_IMPORT_READ_TIMEOUT = env_float("MODELMGR_IMPORT_READ_TIMEOUT", 60.0)
# Extra CA bundle (PEM) for internal servers; empty = the system's trust store.
MODELMGR_IMPORT_CA_BUNDLE = env_str("MODELMGR_IMPORT_CA_BUNDLE")
# Partial files of failed or cancelled imports are kept this long for a retry to resume.
MODELMGR_IMPORT_PARTIAL_KEEP_HOURS = env_float("MODELMGR_IMPORT_PARTIAL_KEEP_HOURS", 24.0)

# --- inference worker (inference/: `manage.py runinference`) ---------------------------
# Where the web process reaches the worker; the worker binds MODELMGR_WORKER_HOST/PORT
# (defaults taken from the URL) and, when set, a Unix socket as well.
MODELMGR_WORKER_URL = env_str("MODELMGR_WORKER_URL", "http://127.0.0.1:8001")
_worker_url = urlsplit(MODELMGR_WORKER_URL)
MODELMGR_WORKER_HOST = env_str("MODELMGR_WORKER_HOST", _worker_url.hostname or "127.0.0.1")
MODELMGR_WORKER_PORT = env_int("MODELMGR_WORKER_PORT", _worker_url.port or 8001)
MODELMGR_WORKER_SOCKET = env_str("MODELMGR_WORKER_SOCKET")
# The worker's public serving port (robots: v1 predict, /v2 Open Inference Protocol), apart
# from the private control API above. `runall` derives the port from the web's (+2).
MODELMGR_SERVE_HOST = env_str("MODELMGR_SERVE_HOST", "127.0.0.1")
MODELMGR_SERVE_PORT = env_int("MODELMGR_SERVE_PORT", 8002)
# Several workers (modelmgr.deploy.fleet): each registers itself in the database under
# MODELMGR_WORKER_NAME (default host:port) with the URLs the web and robots reach it at
# (default from --host/--port and --serve-host/--serve-port), in MODELMGR_WORKER_GROUP
# (a slot may be restricted to one group), and heartbeats every
# MODELMGR_WORKER_HEARTBEAT_S; after MODELMGR_WORKER_DOWN_AFTER missed heartbeats it is
# down and gets no switch and no prediction. No worker up: the web uses
# MODELMGR_WORKER_URL as before.
MODELMGR_WORKER_NAME = env_str("MODELMGR_WORKER_NAME")
MODELMGR_WORKER_GROUP = env_str("MODELMGR_WORKER_GROUP", "default")
MODELMGR_WORKER_ADVERTISE_URL = env_str("MODELMGR_WORKER_ADVERTISE_URL")
MODELMGR_SERVE_ADVERTISE_URL = env_str("MODELMGR_SERVE_ADVERTISE_URL")
MODELMGR_WORKER_HEARTBEAT_S = env_float("MODELMGR_WORKER_HEARTBEAT_S", 5.0)
MODELMGR_WORKER_DOWN_AFTER = env_int("MODELMGR_WORKER_DOWN_AFTER", 3)
# How often a web process re-reads the workers for the predict spread.
MODELMGR_FLEET_REFRESH_S = env_float("MODELMGR_FLEET_REFRESH_S", 1.0)
# A prepared (phase 1) fan-out switch that gets neither commit nor abort is aborted
# after this long, and the worker's control lock released.
MODELMGR_SWITCH_PREPARE_TTL_S = env_float("MODELMGR_SWITCH_PREPARE_TTL_S", 120.0)
# "auto" (cuda:0 when CUDA really works, else cpu), "cpu" or "cuda:N".
MODELMGR_WORKER_DEVICE = env_str("MODELMGR_WORKER_DEVICE", "auto")
# Memory budget on CPU; 0 = half of the machine's RAM. On a GPU the device's memory is it.
MODELMGR_WORKER_RAM_BUDGET_MB = env_int("MODELMGR_WORKER_RAM_BUDGET_MB", 0)
# Fit estimate before a load: sum of artifact sizes x factor (or the version's min_vram_mb).
MODELMGR_WORKER_MEMORY_FACTOR = env_float("MODELMGR_WORKER_MEMORY_FACTOR", 1.5)
MODELMGR_LOAD_TIMEOUT_S = env_float("MODELMGR_LOAD_TIMEOUT_S", 120.0)
# Language models (inference.runtimes.llm): concurrent generations per loaded model, the
# requests that may wait for one (more: 503 with Retry-After), and the context length the
# KV cache is sized for in the memory estimate (0 = the config's max_position_embeddings).
MODELMGR_LLM_NUM_PARALLEL = env_int("MODELMGR_LLM_NUM_PARALLEL", 2)
MODELMGR_LLM_MAX_QUEUE = env_int("MODELMGR_LLM_MAX_QUEUE", 16)
MODELMGR_LLM_CONTEXT = env_int("MODELMGR_LLM_CONTEXT", 0)
# How long a loaded language model that no slot serves and nobody pinned stays loaded
# after its last request (Ollama's OLLAMA_KEEP_ALIVE): seconds or "5m"/"30s"/"1h";
# negative = until unloaded by other means. A version's own keep_alive overrides it.
MODELMGR_LLM_KEEP_ALIVE = _keep_alive_setting("MODELMGR_LLM_KEEP_ALIVE", "5m")
# POST /api/pull: a URL template that turns an Ollama-style "name:tag" into the URL to
# import, e.g. "https://models.example.com/{name}/{tag}.zip" ("" = only URLs are pulled).
MODELMGR_PULL_URL = env_str("MODELMGR_PULL_URL", "")
# A stream's tokens reach the client at most once per this many ms (the first at once):
# the tokens generated meanwhile go out as one chunk (inference.serving.handoff). 0: each
# token as soon as the event loop takes it.
MODELMGR_LLM_STREAM_INTERVAL_MS = env_float("MODELMGR_LLM_STREAM_INTERVAL_MS", 10.0)
# Providers (external Ollama / OpenAI-compatible servers, modelmgr.providers): the longest
# wait for a connection, and for each answer or streamed token (504 past it).
MODELMGR_PROVIDER_CONNECT_TIMEOUT_S = env_float("MODELMGR_PROVIDER_CONNECT_TIMEOUT_S", 5.0)
MODELMGR_PROVIDER_TIMEOUT_S = env_float("MODELMGR_PROVIDER_TIMEOUT_S", 60.0)
MODELMGR_RECONCILE_INTERVAL_S = env_float("MODELMGR_RECONCILE_INTERVAL_S", 10.0)
# The web process commits a switch only after the worker swapped: the reconciler leaves a
# slot changed by /switch alone this long before the database's desired state wins again.
MODELMGR_SWITCH_GRACE_S = env_float("MODELMGR_SWITCH_GRACE_S", 30.0)
# A slot whose version failed to load is retried by the periodic reconcile after this long.
MODELMGR_RECONCILE_RETRY_S = env_float("MODELMGR_RECONCILE_RETRY_S", 60.0)
MODELMGR_WORKER_CACHE_DIR = Path(
    env_str("MODELMGR_WORKER_CACHE_DIR", str(VAR_DIR / "worker-cache"))
)
# Each web process relays the worker's state to its browsers as it changes (/status).
MODELMGR_WORKER_EVENTS_RELAY = env_bool("MODELMGR_WORKER_EVENTS_RELAY", True)
# How often the worker removes cache folders of versions deleted from the registry.
MODELMGR_WORKER_CACHE_PRUNE_S = env_float("MODELMGR_WORKER_CACHE_PRUNE_S", 600.0)
MODELMGR_STATS_FLUSH_S = env_float("MODELMGR_STATS_FLUSH_S", 5.0)
# Health watches of switches (modelmgr.deploy.watch), in the web process.
MODELMGR_WATCH_POLL_S = env_float("MODELMGR_WATCH_POLL_S", 1.0)
MODELMGR_WATCH_STALE_S = env_float("MODELMGR_WATCH_STALE_S", 30.0)
MODELMGR_WATCH_BASELINE_S = env_float("MODELMGR_WATCH_BASELINE_S", 900.0)
# Data drift of tensor slots (inference.drift): the first N requests of each slot version
# are its reference (per slot: "slot=N,..."), compared with a rolling window as long.
MODELMGR_DRIFT = env_bool("MODELMGR_DRIFT", True)
MODELMGR_DRIFT_REFERENCE = env_int("MODELMGR_DRIFT_REFERENCE", 500)
MODELMGR_DRIFT_REFERENCE_SLOTS = env_list("MODELMGR_DRIFT_REFERENCE_SLOTS", [])
MODELMGR_DRIFT_PSI_WARNING = env_float("MODELMGR_DRIFT_PSI_WARNING", 0.1)
MODELMGR_DRIFT_PSI_DRIFT = env_float("MODELMGR_DRIFT_PSI_DRIFT", 0.25)
MODELMGR_DRIFT_KS_P = env_float("MODELMGR_DRIFT_KS_P", 0.01)
MODELMGR_DRIFT_MIN_ROWS = env_int("MODELMGR_DRIFT_MIN_ROWS", 30)
MODELMGR_DRIFT_MAX_FEATURES = env_int("MODELMGR_DRIFT_MAX_FEATURES", 32)
# Requests a second the drift thread summarises at most (the rest are skipped, counted).
MODELMGR_DRIFT_MAX_PER_S = env_int("MODELMGR_DRIFT_MAX_PER_S", 1000)
# Threads per ONNX Runtime / torch CPU op; 0 = 1 on small machines, 2 from 4 cores up.
MODELMGR_WORKER_INTRA_OP_THREADS = env_int("MODELMGR_WORKER_INTRA_OP_THREADS", 0)
# Models whose warm-up/average run is shorter than this run on the event loop itself
# (no thread hop); slower ones run in MODELMGR_WORKER_INFER_THREADS threads.
MODELMGR_WORKER_INLINE_MS = env_float("MODELMGR_WORKER_INLINE_MS", 1.0)
MODELMGR_WORKER_INFER_THREADS = env_int("MODELMGR_WORKER_INFER_THREADS", 4)
# Extra runtimes, "framework=dotted.path.Runtime,..." (merged over the built-in registry).
MODELMGR_WORKER_RUNTIMES = env_list("MODELMGR_WORKER_RUNTIMES", [])

# --- deploy (modelmgr/deploy: the web side of switching, slots, predict proxy, stats) ------
# Connecting to the worker (loopback or a Unix socket) takes microseconds; a short connect
# timeout turns a stopped worker into a quick 503 instead of a hanging request.
MODELMGR_WORKER_CONNECT_TIMEOUT_S = env_float("MODELMGR_WORKER_CONNECT_TIMEOUT_S", 1.0)
# Control calls (status, reconcile, load, unload).
MODELMGR_WORKER_TIMEOUT_S = env_float("MODELMGR_WORKER_TIMEOUT_S", 10.0)
# One inference through POST /api/v1/slots/{slot}/predict.
MODELMGR_PREDICT_TIMEOUT_S = env_float("MODELMGR_PREDICT_TIMEOUT_S", 60.0)
MODELMGR_PREDICT_MAX_BYTES = env_int("MODELMGR_PREDICT_MAX_BYTES", 256 * 1024**2)
# The worker's serving port looks API tokens up in the database once per this many
# seconds (a revocation or a deactivated user takes effect within it).
MODELMGR_TOKEN_CACHE_S = env_float("MODELMGR_TOKEN_CACHE_S", 5.0)
# `runall` restarts a dead worker after MODELMGR_WORKER_RESTART_BACKOFF_S, doubled for each
# restart within the window (at most ..._BACKOFF_MAX_S); after MAX_RESTARTS restarts
# within WINDOW_S it stops trying (a crash loop) and says so; the web keeps running.
MODELMGR_WORKER_MAX_RESTARTS = env_int("MODELMGR_WORKER_MAX_RESTARTS", 5)
MODELMGR_WORKER_RESTART_WINDOW_S = env_float("MODELMGR_WORKER_RESTART_WINDOW_S", 300.0)
MODELMGR_WORKER_RESTART_BACKOFF_S = env_float("MODELMGR_WORKER_RESTART_BACKOFF_S", 0.5)
MODELMGR_WORKER_RESTART_BACKOFF_MAX_S = env_float("MODELMGR_WORKER_RESTART_BACKOFF_MAX_S", 30.0)
# GET /metrics (web and worker) answers anyone who can reach the port, as is common on
# a private port; set a token to have scrapers send it as "Authorization: Bearer ...".
MODELMGR_METRICS_TOKEN = env_str("MODELMGR_METRICS_TOKEN")
# Silence allowed on the /switch progress stream: the worker's load timeout plus a margin
# (a load reports nothing while it runs).
MODELMGR_SWITCH_STREAM_TIMEOUT_S = env_float(
    "MODELMGR_SWITCH_STREAM_TIMEOUT_S", MODELMGR_LOAD_TIMEOUT_S + 30.0
)
# How long a switch waits for another one in progress before it is refused (409).
MODELMGR_SWITCH_LOCK_TIMEOUT_S = env_float(
    "MODELMGR_SWITCH_LOCK_TIMEOUT_S", MODELMGR_LOAD_TIMEOUT_S + 60.0
)
