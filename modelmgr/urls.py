from django.contrib import admin
from django.urls import include, path

from modelmgr.api.routes import api
from modelmgr.views.favicon import favicon

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("favicon.ico", favicon, name="favicon"),
    # The browser pages (modelmgr/views/urls.py).
    path("", include("modelmgr.views.urls")),
]
