"""``manage.py revoke_token USERNAME --name NAME``: revoke a user's token by its name."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from modelmgr.exceptions import ModelmgrError
from modelmgr.registry.tokens import token_revoke


class Command(BaseCommand):
    help = "Revoke a user's API token(s) by name; requests using it get 401 from now on."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True)

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        try:
            count = token_revoke(user=user, name=name, actor_label="manage.py revoke_token")
        except ModelmgrError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(f"revoked {count} token(s) named {name!r} of {username}")
