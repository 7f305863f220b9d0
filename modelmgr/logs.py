"""Logging helpers: keep the log to what an operator needs."""

from __future__ import annotations

import logging


class ClientErrorsOneLine(logging.Filter):
    """Django logs a refused request (django.security.*: RequestDataTooBig, DisallowedHost,
    SuspiciousFileOperation) with the full traceback of the exception that refused it; a
    client's mistake is worth one line, so the traceback is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security.") and record.exc_info:
            record.exc_info = None
            record.exc_text = None
        return True
