"""``manage.py store_copy DEST [--dry-run]``: copy every referenced blob of the configured
artifact store into another one (modelmgr.registry.store_copy): ``s3://bucket/prefix``
before pointing MODELMGR_STORAGE at it, or a local folder (an absolute path) before
pointing MODELMGR_ARTIFACT_ROOT at it, the way back from S3. Safe to run again: it sends
only what is missing.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from modelmgr.exceptions import ModelmgrError
from modelmgr.registry.store_copy import local_store_for, s3_store_for, store_copy
from modelmgr.storage import ContentStore, content_store

USAGE = "DEST is s3://bucket, s3://bucket/prefix or an absolute folder path"


class Command(BaseCommand):
    help = (
        "Copy every blob the registry references into the store at DEST, checking each "
        "one's sha256: s3://bucket/prefix (endpoint, keys and region from "
        "MODELMGR_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ... as for MODELMGR_STORAGE), or an "
        "absolute folder path (a local store, as MODELMGR_ARTIFACT_ROOT)."
    )

    def add_arguments(self, parser):
        parser.add_argument("dest", help="s3://bucket/prefix, or /absolute/folder")
        parser.add_argument(
            "--dry-run", action="store_true", help="list what is missing there, copy nothing"
        )

    def handle(self, *args, dest: str, dry_run: bool, **options):
        target = self._target(dest)
        verbs = {"copied": "copied", "present": "already there", "missing": "would copy"}

        def progress(outcome: str, sha256: str, size: int) -> None:
            if outcome in verbs:
                self.stdout.write(f"{verbs[outcome]}: {sha256} ({size} bytes)")

        try:
            report = store_copy(target, dry_run=dry_run, progress=progress)
        except ModelmgrError as exc:  # a store that cannot be reached: StoreUnavailable
            raise CommandError(f"the copy stopped: {exc.detail}") from None
        except OSError as exc:  # the folder's staging cannot be made
            raise CommandError(f"the copy stopped: {dest}: {exc.strerror or exc}") from None
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

    @staticmethod
    def _target(dest: str) -> ContentStore:
        if dest.startswith("s3:"):
            if dest.rstrip("/") == (settings.MODELMGR_STORAGE or "").rstrip("/"):
                raise CommandError(f"{dest} is the configured store already (MODELMGR_STORAGE)")
            try:
                return s3_store_for(dest)
            except ImproperlyConfigured:
                raise CommandError(f"{dest!r} is not s3://bucket or s3://bucket/prefix") from None
        folder = Path(dest)
        if not folder.is_absolute():
            raise CommandError(f"{dest!r}: {USAGE}")
        if folder.exists() and not folder.is_dir():
            raise CommandError(f"{dest} is a file, not a folder")
        here = content_store().local_root()
        if here is not None and here.parent.resolve() == folder.resolve():
            raise CommandError(f"{dest} is the configured store already (MODELMGR_ARTIFACT_ROOT)")
        return local_store_for(folder)
