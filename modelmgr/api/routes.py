"""Assemble the routers into the one NinjaAPI served at /api/v1/."""

from __future__ import annotations

from modelmgr.api import health
from modelmgr.api import imports as imports_api
from modelmgr.api import models as models_api
from modelmgr.api import versions as versions_api
from modelmgr.api.auth import API_AUTH, docs_access
from modelmgr.api.errors import install_error_handlers
from modelmgr.api.openapi import ModelmgrAPI

api = ModelmgrAPI(
    title="modelmgr API",
    version="1",
    description="Model registry and hot-swapping inference server.",
    auth=API_AUTH,
    urls_namespace="api",
    docs_decorator=docs_access,
)
install_error_handlers(api)
api.add_router("/", health.router)
api.add_router("/", models_api.router)
api.add_router("/", versions_api.router)
# Before resolve_router: its /versions/{path:ref} would swallow .../report (modelmgr.api.reports).
from modelmgr.api import reports as reports_api  # noqa: E402

api.add_router("/", reports_api.router)
from modelmgr.api import profiles as profiles_api  # noqa: E402

api.add_router("/", profiles_api.router)
api.add_router("/", versions_api.resolve_router)
api.add_router("/", imports_api.router)

# --- deploy: slots, switch, predict, stats, status (modelmgr/deploy)
from modelmgr.api import predict as predict_api  # noqa: E402
from modelmgr.api import slots as slots_api  # noqa: E402
from modelmgr.api import stats as stats_api  # noqa: E402
from modelmgr.api import status as status_api  # noqa: E402
from modelmgr.api import switch as switch_api  # noqa: E402
from modelmgr.api.errors import install_deploy_error_handlers  # noqa: E402

install_deploy_error_handlers(api)
api.add_router("/", slots_api.router)
from modelmgr.api import canary as canary_api  # noqa: E402

api.add_router("/", canary_api.router)
api.add_router("/", switch_api.router)
from modelmgr.api import watches as watches_api  # noqa: E402

api.add_router("/", watches_api.router)
api.add_router("/", predict_api.router)
api.add_router("/", stats_api.router)
api.add_router("/", status_api.router)

from modelmgr.api import recommend as recommend_api  # noqa: E402

api.add_router("/", recommend_api.router)

from modelmgr.api import playground as playground_api  # noqa: E402

api.add_router("/", playground_api.router)

from modelmgr.api import providers as providers_api  # noqa: E402

api.add_router("/", providers_api.router)

from modelmgr.api import drift as drift_api  # noqa: E402

api.add_router("/", drift_api.router)
