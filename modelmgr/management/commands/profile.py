"""``manage.py profile REF [--batch-sizes 1,4] [--iterations N] [--max-seconds S]
[--worker NAME] [--json]``: profile a version on a worker (modelmgr.deploy.profile) and
print the table."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from modelmgr.deploy.profile import profile_as_dict, version_profile_run
from modelmgr.exceptions import ModelmgrError
from modelmgr.registry import selectors


class Operator:
    """The command line sees every namespace, as staff do (owner/name@version picks)."""

    is_staff = True
    pk = None


class Command(BaseCommand):
    help = "Profile a version on the worker: latency p50/p95/p99 and throughput per batch size."

    def add_arguments(self, parser):
        parser.add_argument("ref", help="name@version, owner/name@version, or name (newest)")
        parser.add_argument("--batch-sizes", default="", help="comma-separated, e.g. 1,4,16")
        parser.add_argument("--iterations", type=int, default=None, help="timed runs per batch")
        parser.add_argument("--max-seconds", type=float, default=None, help="time limit")
        parser.add_argument("--worker", default="", help="registered worker to measure on")
        parser.add_argument("--json", action="store_true", help="print the stored profile as JSON")

    def handle(self, *args, ref: str, batch_sizes: str, iterations, max_seconds, worker, **options):
        try:
            sizes = [int(s) for s in batch_sizes.split(",") if s.strip()] or None
        except ValueError:
            raise CommandError(f"--batch-sizes must be integers, got {batch_sizes!r}") from None
        try:
            version = selectors.version_resolve(user=Operator(), ref=ref)
            profile = version_profile_run(
                version=version,
                actor=None,
                actor_label="manage.py profile",
                batch_sizes=sizes,
                iterations=iterations,
                max_seconds=max_seconds,
                worker=worker,
                progress=lambda e: (
                    self.stderr.write(
                        f"batch {e['batch_size']}: {e['p50_ms']:.3g} ms p50 ({e['done']}/{e['of']})"
                    )
                    if e.get("event") == "batch"
                    else None
                ),
            )
        except ModelmgrError as exc:
            raise CommandError(exc.detail) from exc
        if options["json"]:
            self.stdout.write(json.dumps(profile_as_dict(profile), cls=DjangoJSONEncoder))
            return
        self.stdout.write(
            f"{version.ref} on {profile.device} ({profile.runtime}), "
            f"load {profile.load_ms:.1f} ms, memory {profile.memory_bytes} bytes"
        )
        self.stdout.write(
            f"{'batch':>6} {'p50 ms':>10} {'p95 ms':>10} {'p99 ms':>10} {'inf/s':>10}"
        )
        for row in profile.results:
            self.stdout.write(
                f"{row['batch_size']:>6} {row['p50_ms']:>10.4g} {row['p95_ms']:>10.4g} "
                f"{row['p99_ms']:>10.4g} {row['throughput_per_s'] or 0:>10.1f}"
            )
