from django.apps import AppConfig


class ModelmgrConfig(AppConfig):
    name = "modelmgr"
    verbose_name = "Model registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from modelmgr.events import connect_signals

        connect_signals()
