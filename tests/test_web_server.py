"""modelmgr.web_server's request-body queue, fed the way daphne feeds it."""

from __future__ import annotations

import asyncio
import io
import tempfile

from modelmgr.web_server import FileBackedBodyQueue

CHUNK = 4


def _fill_like_daphne(queue: FileBackedBodyQueue, content, body: bytes) -> None:
    """daphne's process(): write-then-read the body in chunks, queueing each read."""
    content.write(body)
    content.seek(0)
    while True:
        chunk = content.read(CHUNK)
        more = len(chunk) == CHUNK
        queue.put_nowait({"type": "http.request", "body": chunk, "more_body": more})
        if not more:
            break


def test_the_whole_body_comes_back_as_a_file_of_its_own_and_leaves_the_queue():
    async def scenario():
        with tempfile.TemporaryFile() as content:
            queue = FileBackedBodyQueue(content)
            _fill_like_daphne(queue, content, b"model bytes, eleven chunks of four")
            queue.put_nowait({"type": "http.disconnect"})
            body_file = queue.take_body_file()
            assert body_file.read() == b"model bytes, eleven chunks of four"
            body_file.close()
            # The body is gone from the queue; what follows it (a disconnect) is not.
            assert (await queue())["type"] == "http.disconnect"
            assert queue.take_body_file() is None
            # twisted's own file is still usable after Django closed its descriptor.
            content.seek(0)
            assert content.read(5) == b"model"

    asyncio.run(scenario())


def test_chunks_come_back_as_bytes_when_read_as_messages():
    async def scenario():
        with tempfile.TemporaryFile() as content:
            queue = FileBackedBodyQueue(content)
            _fill_like_daphne(queue, content, b"abcdefghij")
            received = b""
            while True:
                message = await queue()
                received += message["body"]
                if not message["more_body"]:
                    break
            assert received == b"abcdefghij"
            # Once a reader has started on the messages the file is not offered.
            assert queue.take_body_file() is None

    asyncio.run(scenario())


def test_a_body_held_in_memory_or_still_arriving_is_not_offered_as_a_file():
    in_memory = io.BytesIO()
    queue = FileBackedBodyQueue(in_memory)
    _fill_like_daphne(queue, in_memory, b"small body")
    assert queue.take_body_file() is None

    with tempfile.TemporaryFile() as content:
        partial = FileBackedBodyQueue(content)
        content.write(b"abcd")
        content.seek(0)
        partial.put_nowait({"type": "http.request", "body": content.read(4), "more_body": True})
        assert partial.take_body_file() is None
