"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelmgr.settings")

from modelmgr.asgi_handler import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from modelmgr.asgi_limits import RejectOversizeBody  # noqa: E402
from modelmgr.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # The pages' CSS/JS (and the admin's) are served by the web process itself, also
        # with DEBUG off: a self-hosted tool needs no separate static file server.
        # Robots predict on the worker's serving port (inference.serving), not here.
        "http": RejectOversizeBody(ASGIStaticFilesHandler(django_asgi_app)),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

# Import downloads run in the web process; starting the runner here resumes the jobs a
# restart interrupted (MODELMGR_IMPORT_RUNNER=false turns it off).
from modelmgr.imports.runner import imports_runner_ensure_started  # noqa: E402

imports_runner_ensure_started()

# Everything imported so far lives as long as the process. Freezing it keeps the
# collector's full passes from walking these objects again and again: a full pass over
# them paused the event loop, and every request on it, for 70 ms a few times a minute
# under switch traffic (benchmarks/RESULTS.md, hot swap).
gc.freeze()
