"""``manage.py import_model PATH --name NAME``: register a local file or folder as a version."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_slug
from django.db import transaction
from tqdm import tqdm

from modelmgr.audit import audit_record
from modelmgr.exceptions import ModelmgrError
from modelmgr.ingest.detect import framework_choice
from modelmgr.ingest.services import discard_incoming, incoming_from_local_path, version_create
from modelmgr.models import RegisteredModel, Tag, Task

ACTOR_LABEL = "import_model (command line)"


class Command(BaseCommand):
    help = "Import a local model file or folder as a new version (creating the model if needed)."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        # --version means the model version here, not Django's own --version flag.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="a model file or a folder of files")
        parser.add_argument("--name", required=True, help="model name (a slug)")
        parser.add_argument(
            "--version",
            dest="model_version",
            default=None,
            help="version label (default: the next integer)",
        )
        parser.add_argument(
            "--owner", default=None, help="owner's username (default: the first superuser)"
        )
        parser.add_argument(
            "--task", default=None, choices=Task.values, help="task of a newly created model"
        )
        parser.add_argument(
            "--framework", default=None, help="expected framework (checked against the content)"
        )
        parser.add_argument("--description", default="", help="version description")
        parser.add_argument(
            "--tag",
            action="append",
            default=[],
            dest="tags",
            help="tag for a newly created model (repeatable)",
        )

    def handle(self, *args, **options) -> None:
        path: Path = options["path"]
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        owner = self._owner(options["owner"])
        name = options["name"]
        try:
            validate_slug(name)
            for tag in options["tags"]:
                validate_slug(tag)
            framework_choice(options["framework"])
        except ValidationError as exc:
            raise CommandError(f"invalid name or tag: {' '.join(exc.messages)}") from None
        except ModelmgrError as exc:
            raise CommandError(exc.detail) from None

        files = self._stage(path)
        try:
            # One transaction: a refused version leaves no newly created model behind.
            with transaction.atomic():
                model = _model_get_or_create(
                    owner=owner, name=name, task=options["task"], tags=options["tags"]
                )
                version = version_create(
                    model=model,
                    actor=owner,
                    files=files,
                    version=options["model_version"],
                    framework=options["framework"],
                    fields={"description": options["description"]},
                    source_uri=path.resolve().as_uri(),
                    actor_label=ACTOR_LABEL,
                )
        except ModelmgrError as exc:
            raise CommandError(exc.detail) from None
        finally:
            discard_incoming(files)
        self.stdout.write(
            self.style.SUCCESS(
                f"imported {owner.get_username()}/{version.ref} ({version.framework}, "
                f"{version.files.count()} file(s), {version.size_bytes} bytes)"
            )
        )

    def _owner(self, username: str | None):
        users = get_user_model().objects
        if username:
            owner = users.filter(username=username).first()
            if owner is None:
                raise CommandError(f"no user named {username!r}")
            return owner
        owner = users.filter(is_superuser=True, is_active=True).order_by("id").first()
        if owner is None:
            raise CommandError("no superuser exists; create one or pass --owner USERNAME")
        return owner

    def _stage(self, path: Path):
        total = (
            sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            if path.is_dir()
            else path.stat().st_size
        )
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"staging {path.name}",
            file=self.stderr,
            leave=False,
        ) as bar:
            try:
                return incoming_from_local_path(path, progress=bar.update)
            except ModelmgrError as exc:
                raise CommandError(exc.detail) from None


def _model_get_or_create(*, owner, name: str, task: str | None, tags: list[str]):
    """The owner's model called ``name``; created (and audited) when missing."""
    with transaction.atomic():
        model = RegisteredModel.objects.filter(owner=owner, name=name).first()
        if model is not None:
            return model
        model = RegisteredModel.objects.create(owner=owner, name=name, task=task or Task.OTHER)
        for tag in tags:
            model.tags.add(Tag.objects.get_or_create(name=tag)[0])
        audit_record(
            actor=owner,
            actor_label=ACTOR_LABEL,
            action="model.create",
            target_type="model",
            target=name,
            after={"owner": owner.get_username(), "task": model.task, "tags": tags},
        )
        return model
