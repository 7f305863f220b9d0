from django.contrib import admin
from django.urls import include, path, re_path

from modelmgr.api import fallback
from modelmgr.api.routes import api
from modelmgr.views import probes
from modelmgr.views.favicon import favicon

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("favicon.ico", favicon, name="favicon"),
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", probes.metrics, name="metrics"),
    # Every other /api/ path is a JSON 404, not the pages' HTML one.
    re_path(r"^api/(?P<rest>.*)$", fallback.api_not_found),
    # The browser pages (modelmgr/views/urls.py).
    path("", include("modelmgr.views.urls")),
]

# Under /api/ Django's own error answers are JSON too (modelmgr/api/fallback.py).
handler400 = fallback.bad_request
handler404 = fallback.page_not_found
handler500 = fallback.server_error
