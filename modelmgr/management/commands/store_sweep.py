"""``manage.py store_sweep [--older-than SECONDS] [--dry-run]``: remove store leftovers.

The web processes run the same sweep every MODELMGR_STORE_SWEEP_INTERVAL_S; this runs
it now, and ``--dry-run`` shows what it would remove.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from modelmgr.registry.gc import store_sweep


class Command(BaseCommand):
    help = (
        "Remove staging files and unreferenced blobs older than --older-than seconds "
        "(leftovers of crashed uploads and failed deletes); on S3, abort stale multipart uploads."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=float,
            default=None,
            metavar="SECONDS",
            help="minimum age of what is removed (default: MODELMGR_STORE_SWEEP_AGE_S, "
            f"now {settings.MODELMGR_STORE_SWEEP_AGE_S:g}); keep it above your longest upload",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="list what would be removed, remove nothing"
        )

    def handle(self, *args, older_than: float | None, dry_run: bool, **options):
        age = settings.MODELMGR_STORE_SWEEP_AGE_S if older_than is None else older_than
        if age < 0:
            raise CommandError("--older-than must be 0 or more seconds")
        result = store_sweep(older_than_s=age, dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        for path, size in result.staging:
            self.stdout.write(f"{verb} staging file {path} ({size} bytes)")
        for sha256, size in result.blobs:
            self.stdout.write(f"{verb} unreferenced blob {sha256} ({size} bytes)")
        for key, upload_id in result.uploads:
            self.stdout.write(
                f"{'would abort' if dry_run else 'aborted'} multipart upload {upload_id} of {key}"
            )
        self.stdout.write(
            f"{verb} {len(result.staging)} staging file(s) ({result.staging_bytes} bytes) and "
            f"{len(result.blobs)} unreferenced blob(s) ({result.blob_bytes} bytes) "
            f"older than {age:g} s"
            + (f"; {len(result.uploads)} stale multipart upload(s)" if result.uploads else "")
        )
