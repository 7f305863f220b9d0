"""``manage.py provider``: register, list, discover and delete providers.

    manage.py provider add lab --kind openai --url http://gpu-box:8000/v1 --key-env LAB_KEY
    manage.py provider discover lab
    manage.py provider list
    manage.py provider delete lab

The key is read from an environment variable (``--key-env``), never from the command
line, where other users of the machine could see it in the process list.
"""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from modelmgr.exceptions import ModelmgrError
from modelmgr.providers import services
from modelmgr.providers.discovery import provider_discover
from modelmgr.providers.protocol import KINDS

ACTOR_LABEL = "manage.py provider"


class Command(BaseCommand):
    help = "Register, list, discover and delete external model providers (Ollama, OpenAI)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as",
            dest="username",
            default=None,
            help="acting staff user (default: first superuser)",
        )
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="register a provider")
        add.add_argument("name")
        add.add_argument("--kind", required=True, choices=KINDS)
        add.add_argument("--url", required=True, help="base URL (openai: …/v1)")
        add.add_argument("--key-env", default=None, help="environment variable holding the key")
        add.add_argument("--description", default="")
        sub.add_parser("list", help="list providers (keys masked)")
        discover = sub.add_parser("discover", help="record the provider's models")
        discover.add_argument("name")
        delete = sub.add_parser("delete", help="delete (refused while a slot serves its model)")
        delete.add_argument("name")

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
        actor = self._actor(options["username"])
        action = options["action"]
        try:
            if action == "list":
                for provider in services.provider_list():
                    key = provider.masked_key or "no key"
                    self.stdout.write(
                        f"{provider.name}\t{provider.kind}\t{provider.base_url}\t{key}"
                    )
                return
            if action == "add":
                key = ""
                if options["key_env"]:
                    key = os.environ.get(options["key_env"], "")
                    if not key:
                        raise CommandError(f"environment variable {options['key_env']} is empty")
                provider = services.provider_create(
                    name=options["name"],
                    kind=options["kind"],
                    base_url=options["url"],
                    api_key=key,
                    description=options["description"],
                    actor=actor,
                    actor_label=ACTOR_LABEL,
                )
                self.stdout.write(f"registered {provider.name} at {provider.base_url}")
                return
            provider = services.provider_get(name=options["name"])
            if action == "discover":
                found = provider_discover(provider=provider, actor=actor, actor_label=ACTOR_LABEL)
                for row in found["models"]:
                    self.stdout.write(f"{row['outcome']}\t{row['name']}\t{row['ref'] or ''}")
                for ref in found["missing"]:
                    self.stdout.write(f"missing\t{ref}")
                return
            services.provider_delete(provider=provider, actor=actor, actor_label=ACTOR_LABEL)
            self.stdout.write(f"deleted {provider.name}")
        except ModelmgrError as exc:
            raise CommandError(exc.detail) from exc
