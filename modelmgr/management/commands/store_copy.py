"""``manage.py store_copy s3://bucket/prefix [--dry-run]``: copy every referenced blob of
the configured artifact store into an S3-compatible one (modelmgr.registry.store_copy),
before pointing MODELMGR_STORAGE at it. Safe to run again: it sends only what is missing.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from modelmgr.exceptions import ModelmgrError
from modelmgr.registry.store_copy import s3_store_for, store_copy


class Command(BaseCommand):
    help = (
        "Copy every blob the registry references into the S3-compatible store at DEST "
        "(s3://bucket/prefix; endpoint, keys and region from MODELMGR_S3_ENDPOINT_URL, "
        "AWS_ACCESS_KEY_ID, ... as for MODELMGR_STORAGE), checking each one's sha256."
    )

    def add_arguments(self, parser):
        parser.add_argument("dest", help="s3://bucket/prefix")
        parser.add_argument(
            "--dry-run", action="store_true", help="list what is missing there, copy nothing"
        )

    def handle(self, *args, dest: str, dry_run: bool, **options):
        if dest.rstrip("/") == (settings.MODELMGR_STORAGE or "").rstrip("/"):
            raise CommandError(f"{dest} is the configured store already (MODELMGR_STORAGE)")
        try:
            target = s3_store_for(dest)
        except ImproperlyConfigured:
            raise CommandError(f"{dest!r} is not s3://bucket or s3://bucket/prefix") from None
        verbs = {"copied": "copied", "present": "already there", "missing": "would copy"}

        def progress(outcome: str, sha256: str, size: int) -> None:
            if outcome in verbs:
                self.stdout.write(f"{verbs[outcome]}: {sha256} ({size} bytes)")

        try:
            report = store_copy(target, dry_run=dry_run, progress=progress)
        except ModelmgrError as exc:  # a store that cannot be reached: StoreUnavailable
            raise CommandError(f"the copy stopped: {exc.detail}") from None
        for _, why in report.failed:
            self.stderr.write(f"failed: {why}")
        verb = "would copy" if dry_run else "copied"
        self.stdout.write(
            f"{verb} {len(report.copied)} blob(s) ({report.copied_bytes} bytes) to {dest}; "
            f"{len(report.present)} already there; {len(report.failed)} failed"
        )
        if report.failed:
            raise CommandError(
                f"{len(report.failed)} blob(s) were not copied (see above); fix or verify "
                "those versions, then run it again"
            )
