"""A small OpenAI-compatible chat-completions server for tests.

Real HTTP on 127.0.0.1 (port 0, read back) through h11, on anyio so it runs
under trio and asyncio alike. It answers each POST with the next queued
reply: a stream of ``chat.completion.chunk`` events (each one written in two
pieces, split mid-line, so the client must reassemble lines), an error with
a JSON body, or a stream that stops and waits until the client goes away.
It records every request it got.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import h11
from anyio.abc import SocketAttribute, SocketStream, TaskStatus
from attrs import define, field, frozen


@frozen
class Reply:
    """One answer: ``chunks`` streamed as SSE, or ``status`` with ``body`` as JSON."""

    chunks: Sequence[Any] = ()  # dicts become `data: {json}`; strings are sent as data as they are
    status: int = 200
    body: Any = None  # for errors, or a non-streamed completion
    hang: bool = False  # after the chunks, wait for the client to disconnect instead of [DONE]


@frozen
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def text_chunks(*pieces: str) -> list[dict[str, Any]]:
    """A streamed text reply, one piece per chunk, then ``finish_reason: stop``."""
    chunks = [_chunk({"role": "assistant", "content": ""})]
    chunks += [_chunk({"content": piece}) for piece in pieces]
    return [*chunks, _chunk({}, finish_reason="stop")]


def tool_call_chunks(*calls: tuple[str, str, str], pieces: int = 3) -> list[dict[str, Any]]:
    """Streamed parallel tool calls ``(id, name, arguments JSON)``, as OpenAI sends them.

    Each call's first fragment carries its index, id and name with empty
    arguments; the arguments follow in ``pieces`` fragments, the calls'
    fragments interleaved.
    """
    chunks = [_chunk({"role": "assistant", "content": None})]
    for index, (call_id, name, _) in enumerate(calls):
        first = {"index": index, "id": call_id, "type": "function"}
        chunks.append(
            _chunk({"tool_calls": [{**first, "function": {"name": name, "arguments": ""}}]})
        )
    for part in range(pieces):
        for index, (_, _, arguments) in enumerate(calls):
            size = -(-len(arguments) // pieces)
            piece = arguments[part * size : (part + 1) * size]
            fragment = {"index": index, "function": {"arguments": piece}}
            chunks.append(_chunk({"tool_calls": [fragment]}))
    return [*chunks, _chunk({}, finish_reason="tool_calls")]


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


@define
class FakeOpenAI:
    replies: deque[Reply] = field(factory=deque)
    requests: list[Received] = field(factory=list)
    port: int = 0
    disconnected: anyio.Event = field(factory=anyio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        async with listener:
            task_status.started(listener.extra(SocketAttribute.local_port))
            await listener.serve(self._handle)

    async def _handle(self, stream: SocketStream) -> None:
        async with stream:
            connection = h11.Connection(h11.SERVER)
            request = await self._read_request(stream, connection)
            if request is None:
                return
            self.requests.append(request)
            reply = self.replies.popleft() if self.replies else Reply(status=500, body={})
            if reply.status != 200 or reply.body is not None:
                await self._send_json(stream, connection, reply.status, reply.body)
            else:
                await self._send_events(stream, connection, reply)

    async def _read_request(
        self, stream: SocketStream, connection: h11.Connection
    ) -> Received | None:
        head: h11.Request | None = None
        body = b""
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                try:
                    connection.receive_data(await stream.receive())
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    connection.receive_data(b"")
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                headers = {k.decode().lower(): v.decode() for k, v in head.headers}
                return Received(head.target.decode(), headers, json.loads(body))
            else:
                return None

    async def _send_json(
        self, stream: SocketStream, connection: h11.Connection, status: int, body: Any
    ) -> None:
        data = json.dumps(body).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
        await self._send(stream, connection, h11.Response(status_code=status, headers=headers))
        await self._send(stream, connection, h11.Data(data=data))
        await self._send(stream, connection, h11.EndOfMessage())

    async def _send_events(
        self, stream: SocketStream, connection: h11.Connection, reply: Reply
    ) -> None:
        headers = [("content-type", "text/event-stream"), ("connection", "close")]
        await self._send(stream, connection, h11.Response(status_code=200, headers=headers))
        for chunk in reply.chunks:
            data = chunk if isinstance(chunk, str) else json.dumps(chunk)
            event = f"data: {data}\n\n".encode()
            half = len(event) // 2
            await self._send(stream, connection, h11.Data(data=event[:half]))
            await self._send(stream, connection, h11.Data(data=event[half:]))
        if reply.hang:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                await stream.receive()  # returns or raises only when the client hangs up
            self.disconnected.set()
            return
        await self._send(stream, connection, h11.Data(data=b"data: [DONE]\n\n"))
        await self._send(stream, connection, h11.EndOfMessage())

    async def _send(self, stream: SocketStream, connection: h11.Connection, event: Any) -> None:
        data = connection.send(event)
        if data:
            await stream.send(data)


@contextlib.asynccontextmanager
async def open_fake_openai(*replies: Reply) -> AsyncIterator[FakeOpenAI]:
    """A running fake server with ``replies`` queued; stopped when the block ends."""
    server = FakeOpenAI(replies=deque(replies))
    async with anyio.create_task_group() as group:
        server.port = await group.start(server.serve)
        yield server
        group.cancel_scope.cancel()
