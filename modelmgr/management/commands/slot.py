"""``manage.py slot``: a slot's canary, shadow, promotion, gate and figures from the command line.

    manage.py slot canary detector tiny-detector@1.1 --share 0.2
    manage.py slot shadow detector tiny-detector@2.0
    manage.py slot arms detector
    manage.py slot promote detector --watch-window 60 --max-error-rate 0.05
    manage.py slot abort detector
    manage.py slot drift detector
    manage.py slot gate detector --quality-gate '{"val_accuracy": ">= 0.9"}' --production

The same services as the API, the pages and the admin (modelmgr.deploy.canary,
modelmgr.deploy.watch_switch, modelmgr.deploy.arms, modelmgr.deploy.drift), audited as
the acting user (``--as``, default the first superuser) with the label
``manage.py slot``. A watched promotion is watched by this command in the foreground (a
command's threads end with it): it prints the figures as they come and exits with the
verdict, status 1 when the promoted version was rolled back.
"""

from __future__ import annotations

import json
import time
from argparse import BooleanOptionalAction

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from modelmgr.deploy.arms import slot_arms
from modelmgr.deploy.canary import arms_abort, canary_set, shadow_set
from modelmgr.deploy.drift import slot_drift
from modelmgr.deploy.gate import slot_gate_set
from modelmgr.deploy.watch import watch_step
from modelmgr.deploy.watch_runner import poll_s
from modelmgr.deploy.watch_switch import canary_promote_watched
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import Slot, SwitchWatch, WatchState

ACTOR_LABEL = "manage.py slot"
WATCH_OPTIONS = ("window_s", "max_error_rate", "max_p95_ratio", "min_requests")


class Command(BaseCommand):
    help = "Set a slot's canary or shadow, promote or abort it, show its arms and drift."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as", dest="username", default=None, help="acting user")
        sub = parser.add_subparsers(dest="action", required=True)
        canary = sub.add_parser("canary", help="serve a second version to a share of requests")
        canary.add_argument("slot")
        canary.add_argument("ref", help="name@version of the canary")
        canary.add_argument("--share", type=float, required=True, help="0 to 1")
        canary.add_argument("--force", action="store_true", help="past the quality gate")
        shadow = sub.add_parser("shadow", help="mirror every request to a version")
        shadow.add_argument("slot")
        shadow.add_argument("ref")
        promote = sub.add_parser("promote", help="the canary becomes the active version")
        promote.add_argument("slot")
        promote.add_argument("--force", action="store_true")
        promote.add_argument("--watch-window", dest="window_s", type=float, default=None)
        promote.add_argument("--max-error-rate", dest="max_error_rate", type=float)
        promote.add_argument("--max-p95-ratio", dest="max_p95_ratio", type=float)
        promote.add_argument("--min-requests", dest="min_requests", type=int)
        gate = sub.add_parser("gate", help="a slot's quality gate and production flag")
        gate.add_argument("slot")
        gate.add_argument(
            "--quality-gate", dest="quality_gate", help='JSON, e.g. {"val_accuracy": ">= 0.9"}'
        )
        gate.add_argument("--production", action=BooleanOptionalAction, default=None)
        for name, text in (
            ("abort", "remove the canary and the shadow"),
            ("arms", "per-arm figures (JSON)"),
            ("drift", "data drift of what the slot serves (JSON)"),
        ):
            sub.add_parser(name, help=text).add_argument("slot")

    def _actor(self, username: str | None):
        users = get_user_model().objects
        user = (
            users.filter(username=username).first()
            if username
            else users.filter(is_superuser=True).order_by("pk").first()
        )
        if user is None:
            raise CommandError(f"no user {username!r}" if username else "no superuser yet")
        return user

    def handle(self, *args, **options) -> None:
        action, slot = options["action"], options["slot"]
        try:
            if action == "arms":
                return self._json(slot_arms(slot))
            if action == "drift":
                return self._json(slot_drift(slot_name=slot))
            who = {"actor": self._actor(options["username"]), "actor_label": ACTOR_LABEL}
            if action == "canary":
                answer = canary_set(
                    slot=slot,
                    ref=options["ref"],
                    share=options["share"],
                    force=options["force"],
                    **who,
                )
            elif action == "shadow":
                answer = shadow_set(slot=slot, ref=options["ref"], **who)
            elif action == "abort":
                answer = arms_abort(slot=slot, **who)
            elif action == "gate":
                return self._gate(slot, options, who)
            else:
                return self._promote(slot, options, who)
        except ModelmgrError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"{slot}: {json.dumps(answer['after'], sort_keys=True)}")

    def _promote(self, slot: str, options: dict, who: dict) -> None:
        watch = {k: options[k] for k in WATCH_OPTIONS if options.get(k) is not None}
        answer, watch_id = canary_promote_watched(
            slot=slot, watch=watch or None, run=False, force=options["force"], **who
        )
        self.stdout.write(f"{slot}: {json.dumps(answer['after'], sort_keys=True)}")
        if watch_id is None:
            return
        self.stdout.write(f"watching {slot} (watch {watch_id}) for {watch['window_s']:g} s")
        while not watch_step(watch_id):
            row = SwitchWatch.objects.get(pk=watch_id)
            self.stdout.write(f"  {row.verdict}")
            time.sleep(poll_s())
        row = SwitchWatch.objects.get(pk=watch_id)
        self.stdout.write(f"{row.state}: {row.verdict}")
        if row.state in (WatchState.ROLLED_BACK, WatchState.ROLLBACK_FAILED):
            raise CommandError(f"{slot}: the promoted version regressed: {row.verdict}")

    def _gate(self, slot: str, options: dict, who: dict) -> None:
        gate = options["quality_gate"]
        if gate is not None:
            try:
                gate = json.loads(gate)
            except ValueError as exc:
                raise CommandError(f"--quality-gate is not JSON: {exc}") from None
        row = Slot.objects.filter(name=slot).first()
        if row is None:
            raise CommandError(f"there is no slot named {slot!r}")
        row = slot_gate_set(slot=row, quality_gate=gate, production=options["production"], **who)
        self._json({"slot": slot, "quality_gate": row.quality_gate, "production": row.production})

    def _json(self, body: dict) -> None:
        self.stdout.write(json.dumps(body, indent=2, sort_keys=True, default=str))
