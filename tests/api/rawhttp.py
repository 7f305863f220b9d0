"""Hand-built requests for tests that need what ordinary clients will not send: a raw
multipart body with any file name, an HTTP request written to a socket piece by piece."""

from __future__ import annotations

import json
import socket
import struct

BOUNDARY = "modelmgr-test-boundary"


def multipart_body(fields: dict[str, str], *, filename: bytes | str, data: bytes) -> bytes:
    """A multipart/form-data body with ``fields`` and one ``file`` part named ``filename``
    exactly as given (no client-side basename or escaping)."""
    if isinstance(filename, str):
        filename = filename.encode()
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="'
        + filename
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + data
        + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


MULTIPART_CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def safetensors_bytes(size: int) -> bytes:
    """A valid safetensors file with one U8 tensor of ``size`` zero bytes."""
    header = json.dumps({"w": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + bytes(size)


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one response up to the server's close: status, lower-cased headers, body."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body
