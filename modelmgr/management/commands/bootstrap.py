"""First-start set-up for `make run` on the embedded default: an admin user and demo models.

Idempotent: it does nothing that is already done. On a configured deployment
(DATABASE_URL set) it creates no admin user; use `createsuperuser` there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from modelmgr.audit import audit_record
from modelmgr.models import RegisteredModel, Slot


class Command(BaseCommand):
    help = "Create the embedded default's admin user and register the demo models and slots."

    def add_arguments(self, parser):
        parser.add_argument("--no-demo", action="store_true", help="skip the demo models")

    def handle(self, *args, no_demo: bool = False, **options):
        admin = self._ensure_admin()
        if not no_demo and admin is not None:
            self._ensure_demo_models(admin)
            self._ensure_demo_contracts(admin)

    def _ensure_admin(self):
        User = get_user_model()
        existing = User.objects.filter(is_superuser=True).order_by("id").first()
        if existing is not None:
            return existing
        if not settings.EMBEDDED_DEFAULT:
            self.stdout.write("No superuser yet: create one with `manage.py createsuperuser`.")
            return None
        user = User.objects.create_superuser("admin", "admin@localhost", "admin")
        self.stdout.write(
            self.style.WARNING(
                "Created the admin user admin/admin (embedded default only). "
                "Change its password before you expose this server."
            )
        )
        return user

    def _ensure_demo_models(self, admin) -> None:
        from modelmgr.demo import DEMO_MODELS
        from modelmgr.ingest.services import incoming_from_local_path, version_create

        if RegisteredModel.objects.exists():
            return
        self.stdout.write("Building the demo models ...")
        with tempfile.TemporaryDirectory() as tmp:
            for name, version, task, slot_name, builder, kwargs, filename, inputs in DEMO_MODELS:
                path = builder(Path(tmp) / f"{name}-{version}-{filename}", **kwargs)
                model, _ = RegisteredModel.objects.get_or_create(
                    owner=admin,
                    name=name,
                    defaults={"task": task, "description": f"Demo {task} built by bootstrap"},
                )
                files = incoming_from_local_path(path)
                files[0].path = filename
                metadata = {"demo": True}
                if inputs:
                    metadata["inputs"] = (
                        inputs  # warm-up shapes for TorchScript (inference.signature)
                    )
                created = version_create(
                    model=model,
                    actor=admin,
                    files=files,
                    version=version,
                    fields={"description": f"demo {name} {version}", "metadata": metadata},
                    source_uri="modelmgr-demo",
                )
                if slot_name:
                    self._assign_slot(slot_name, task, created, admin)
                self.stdout.write(f"  registered {created.ref}")

    def _ensure_demo_contracts(self, admin) -> None:
        """Demo slots assigned before contracts were bootstrapped get theirs now: a slot
        without one takes any model, and a wrong input breaks the robots calling it."""
        demo_slots = Slot.objects.filter(contract={}, active_version__isnull=False)
        for slot in demo_slots.select_related("active_version__model"):
            version = slot.active_version
            if not (isinstance(version.metadata, dict) and version.metadata.get("demo")):
                continue
            contract = _contract_of(version)
            if not contract:
                continue
            with transaction.atomic():
                Slot.objects.filter(pk=slot.pk).update(contract=contract)
                audit_record(
                    actor=admin,
                    action="slot.update",
                    target_type="slot",
                    target=slot.name,
                    before={"contract": {}},
                    after={"contract": contract},
                )
            self.stdout.write(f"  slot {slot.name}: contract from {version.ref}")

    def _assign_slot(self, slot_name, task, version, admin) -> None:
        with transaction.atomic():
            # The slot's contract is what its demo version takes and gives (the declared
            # inputs fill what TorchScript's file does not record).
            contract = _contract_of(version)
            slot, _ = Slot.objects.get_or_create(
                name=slot_name, defaults={"task": task, "contract": contract}
            )
            slot.active_version = version
            slot.save(update_fields=["active_version", "updated_at"])
            audit_record(
                actor=admin,
                action="slot.assign",
                target_type="slot",
                target=slot_name,
                before=None,
                after={"active": version.ref},
            )


def _contract_of(version) -> dict:
    """A contract from a version's signature: each input and output's name, shape, dtype."""
    from modelmgr.deploy.contract import clean_contract, effective_signature

    signature = effective_signature(version)
    return clean_contract(
        {
            side: [
                {key: item.get(key) for key in ("name", "shape", "dtype")}
                for item in signature.get(side) or []
                if item.get("name")
            ]
            for side in ("inputs", "outputs")
            if signature.get(side)
        }
    )
