from django.apps import AppConfig


class ModelmgrConfig(AppConfig):
    name = "modelmgr"
    verbose_name = "Model registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from modelmgr.events import connect_signals
        from modelmgr.registry.counters import triggers_ensure

        connect_signals()
        # A later migration that rebuilds the version table on SQLite drops its triggers.
        post_migrate.connect(triggers_ensure, sender=self, dispatch_uid="modelmgr-counters")
