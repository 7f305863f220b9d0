"""WebSocket routes: /ws/events/ pushes live partials to the pages."""

from __future__ import annotations

from django.urls import path

from modelmgr.consumers import EventsConsumer

websocket_urlpatterns = [
    path("ws/events/", EventsConsumer.as_asgi()),
]
