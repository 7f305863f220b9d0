"""``manage.py create_token USERNAME --name NAME [--scopes read,write] [--slots a,b]``:
prints the token once."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from modelmgr.exceptions import ModelmgrError
from modelmgr.registry.tokens import token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="a name to recognise and revoke it by")
        parser.add_argument(
            "--scopes", default="read", help="comma-separated: read, write (default: read)"
        )
        parser.add_argument(
            "--slots",
            default="",
            help="comma-separated slot names it may predict on (default: every slot)",
        )

    def handle(self, *args, username: str, name: str, scopes: str, slots: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        try:
            token, raw = token_create(
                user=user,
                name=name,
                scopes=scopes.split(","),
                slots=slots.split(","),
                actor_label="manage.py create_token",
            )
        except ModelmgrError as exc:
            raise CommandError(exc.detail) from exc
        where = f"slot(s) {', '.join(token.slots)}" if token.slots else "every slot"
        self.stderr.write(
            f"token {token.name!r} for {username} with scope(s) {', '.join(token.scopes)} "
            f"on {where}; it is shown only now:"
        )
        self.stdout.write(raw)
