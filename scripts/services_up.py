"""Exit 0 when PostgreSQL and Redis both answer at the given URLs, else 1 (and say which)."""

from __future__ import annotations

import socket
import sys
from urllib.parse import urlsplit


def answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def main() -> int:
    pg_url, redis_url = sys.argv[1], sys.argv[2]
    missing = [
        name
        for name, url, port in (("PostgreSQL", pg_url, 5432), ("Redis", redis_url, 6379))
        if not answers(url, port)
    ]
    for name in missing:
        print(f"{name} is not answering", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
