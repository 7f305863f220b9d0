"""The predict path's HTTP/1.1 client against small real asyncio servers."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from modelmgr.deploy.wire import WireError, WirePool

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


@contextlib.asynccontextmanager
async def server(handle):
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        await srv.wait_closed()


async def read_request(reader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    return head + await reader.readexactly(length)


def pool(port: int, timeout: float = 30.0) -> WirePool:
    return WirePool(host="127.0.0.1", port=port, connect_timeout=5, timeout=timeout)


async def test_keep_alive_connection_is_reused():
    connections = []

    async def handle(reader, writer):
        connections.append(writer)
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(OK)

    async with server(handle) as port:
        wire = pool(port)
        for _ in range(3):
            response = await wire.post("/infer/a", b"{}", {"content-type": "application/json"})
            assert (response.status_code, response.content) == (200, b"{}")
        wire.close()
    assert len(connections) == 1


async def test_connection_the_worker_closed_while_idle_is_replaced():
    served = []

    async def handle(reader, writer):
        await read_request(reader)
        served.append(1)
        writer.write(OK)
        await writer.drain()
        writer.close()  # as a worker restart, or uvicorn's keep-alive timeout, does

    async with server(handle) as port:
        wire = pool(port)
        assert (await wire.post("/infer/a", b"{}", {})).status_code == 200
        await asyncio.sleep(0)  # let the close arrive
        assert (await wire.post("/infer/a", b"{}", {})).status_code == 200
    assert len(served) == 2


async def test_chunked_response_is_read_whole():
    async def handle(reader, writer):
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 422 Unprocessable\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        await writer.drain()

    async with server(handle) as port:
        response = await pool(port).post("/infer/a", b"{}", {})
    assert (response.status_code, response.content) == (422, b"abcde")


async def test_closed_port_is_a_clear_error():
    async with server(lambda r, w: None) as port:
        pass
    with pytest.raises(WireError) as caught:
        await pool(port).post("/infer/a", b"{}", {})
    assert "cannot connect" in caught.value.cause


async def test_silent_worker_hits_the_timeout():
    async def handle(reader, writer):
        await read_request(reader)
        await asyncio.sleep(3600)

    async with server(handle) as port:
        with pytest.raises(WireError) as caught:
            await pool(port, timeout=0.2).post("/infer/a", b"{}", {})
    assert caught.value.cause == "no answer within 0.2 s"


async def test_connection_dropped_mid_answer_is_a_clear_error():
    async def handle(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{")
        await writer.drain()
        writer.close()

    async with server(handle) as port:
        with pytest.raises(WireError) as caught:
            await pool(port).post("/infer/a", b"{}", {})
    assert caught.value.cause.startswith("the connection broke")
