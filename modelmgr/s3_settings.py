"""``MODELMGR_STORAGE=s3://bucket/prefix``: the artifact store's settings for S3.

Read by modelmgr.settings (so nothing here imports Django's storage machinery); botocore
is imported only when S3 is configured. Credentials are left to boto3's own chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_PROFILE``,
an instance role), so no key passes through Django's settings.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

S3_BACKEND = "storages.backends.s3.S3Storage"


def parse_storage_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix"); loud on anything else."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ImproperlyConfigured(
            f"MODELMGR_STORAGE={url!r} is not s3://bucket or s3://bucket/prefix"
        )
    return parts.netloc, parts.path.strip("/")


def s3_artifact_storage(url: str) -> dict:
    """The ``STORAGES["artifacts"]`` entry for an S3-compatible service."""
    from botocore.config import Config

    bucket, prefix = parse_storage_url(url)
    env = os.environ
    addressing = env.get("MODELMGR_S3_ADDRESSING_STYLE", "path")
    if addressing not in ("path", "virtual", "auto"):
        raise ImproperlyConfigured(
            f"MODELMGR_S3_ADDRESSING_STYLE={addressing!r} is not path, virtual or auto"
        )
    region = env.get("MODELMGR_S3_REGION") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    try:
        attempts = int(env.get("MODELMGR_S3_MAX_ATTEMPTS") or 5)
    except ValueError:
        raise ImproperlyConfigured("MODELMGR_S3_MAX_ATTEMPTS must be an integer") from None
    config = Config(
        s3={"addressing_style": addressing},
        retries={"max_attempts": max(attempts, 1), "mode": "standard"},
        # Our own sha256 covers every byte end to end (checked again by the worker);
        # botocore's extra CRC per request would cost CPU, and not every S3-compatible
        # service accepts its trailing-checksum encoding.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=20,
    )
    return {
        "BACKEND": S3_BACKEND,
        "OPTIONS": {
            "bucket_name": bucket,
            "location": prefix,
            "endpoint_url": env.get("MODELMGR_S3_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL"),
            "region_name": region or "us-east-1",
            "client_config": config,
            "file_overwrite": True,  # content-addressed: same key, same bytes
            "querystring_auth": False,
            "default_acl": None,
        },
    }


def is_s3(storage_settings: dict) -> bool:
    return storage_settings.get("BACKEND") == S3_BACKEND
