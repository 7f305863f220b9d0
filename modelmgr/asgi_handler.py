"""Django's ASGI handler, taking the request body as a file when the server has one.

Django's ``ASGIHandler.read_body`` copies every body chunk into a temporary file of
its own before any view runs. For a multi-gigabyte upload that second copy was the
largest single cost of ingest (about half the web process's time in
benchmarks/ingest.py). modelmgr.web_server already holds the complete body in
twisted's temporary file, and its ``receive`` callable offers it with
``take_body_file()``; any other server (or a middleware that wraps ``receive``) gets
Django's own behaviour.
"""

from __future__ import annotations

import django
from django.core.handlers.asgi import ASGIHandler


class BodyFileASGIHandler(ASGIHandler):
    async def read_body(self, receive):
        take_body_file = getattr(receive, "take_body_file", None)
        body_file = take_body_file() if take_body_file is not None else None
        if body_file is None:
            return await super().read_body(receive)
        return body_file


def get_asgi_application() -> BodyFileASGIHandler:
    """django.core.asgi.get_asgi_application, with the handler above."""
    django.setup(set_prefix=False)
    return BodyFileASGIHandler()
