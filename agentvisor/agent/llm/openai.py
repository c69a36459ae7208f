"""``OpenAIChat``: any OpenAI-compatible chat-completions endpoint, streamed.

Speaks the wire format directly over httpx (no SDK dependency): a POST with
``"stream": true``, answered by server-sent events whose ``data:`` lines hold
``chat.completion.chunk`` objects and end with ``data: [DONE]``. Text comes in
``choices[0].delta.content``; tool calls come in fragments
(``delta.tool_calls[i]`` with an ``index``, the ``id`` and ``function.name``
once, ``function.arguments`` in pieces) and are assembled here, because the
loop can only run a call whose arguments are complete. OpenAI, vLLM, Ollama,
llama.cpp's server and LM Studio all speak it, each with small deviations
that are tolerated below and named where they are.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any

import anyio
import httpx

from agentvisor.agent.llm.base import (
    LLMDelta,
    LLMError,
    Message,
    ReasoningDelta,
    TextDelta,
    ToolDefinition,
    ToolRequest,
    new_call_id,
)

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "OpenAIChat"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"

_REMEDIES = {
    401: "check OPENAI_API_KEY",
    403: "check OPENAI_API_KEY and the model's access",
    404: "check OPENAI_BASE_URL and AGENTVISOR_MODEL",
}


class OpenAIChat:
    """A chat-completions endpoint, configured from the environment when not told.

    ``model`` defaults to ``$AGENTVISOR_MODEL`` (else ``gpt-4o-mini``),
    ``base_url`` to ``$OPENAI_BASE_URL`` (else OpenAI's), ``api_key`` to
    ``$OPENAI_API_KEY`` (local servers often need none). ``timeout`` bounds
    connecting and each wait for the next chunk, not the whole reply, so a
    long answer that keeps streaming is never cut off.

    Each ``complete`` opens its own ``httpx.AsyncClient`` unless
    ``http_client`` is given: agent files build their agent at import time,
    before any event loop exists, and the worker may run on asyncio or trio,
    so the object holds no loop-bound state. Pass a client you own (and
    close) to reuse connections.
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        *,
        http_client: httpx.AsyncClient | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model or os.environ.get("AGENTVISOR_MODEL") or DEFAULT_MODEL
        url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.extra_body = dict(extra_body or {})
        self._http_client = http_client

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChat(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    async def complete(
        self, messages: Sequence[Message], tools: Sequence[ToolDefinition]
    ) -> AsyncIterator[LLMDelta]:
        """Stream one reply: text and reasoning as they arrive, tool calls once complete."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [wire_message(m) for m in messages],
            "stream": True,
        }
        if tools:  # some servers reject an empty list
            body["tools"] = list(tools)
        body.update(self.extra_body)
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        async with self._open_client() as client:
            try:
                async with client.stream("POST", self.url, json=body, headers=headers) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise self._http_error(response)
                    if response.headers.get("content-type", "").startswith("application/json"):
                        # The server ignored "stream": one complete chat.completion.
                        await response.aread()
                        for delta in message_deltas(self._json(response.text)):
                            yield delta
                        return
                    async with contextlib.aclosing(self._stream_deltas(response)) as deltas:
                        async for delta in deltas:
                            yield delta
            except httpx.TimeoutException as exc:
                raise LLMError(
                    f"The model endpoint {self.url} sent nothing for {self.timeout:g} s"
                    f" ({type(exc).__name__})."
                ) from exc
            except httpx.TransportError as exc:
                raise LLMError(f"Could not reach the model endpoint {self.url}: {exc!r}.") from exc

    def _open_client(self) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
        if self._http_client is not None:
            return contextlib.nullcontext(self._http_client)
        return httpx.AsyncClient(timeout=httpx.Timeout(self.timeout))

    async def _stream_deltas(self, response: httpx.Response) -> AsyncGenerator[LLMDelta]:
        """Deltas from the SSE body: text as it comes, tool calls at ``[DONE]`` or the end."""
        lines = response.aiter_lines()
        decoder = SSEDecoder()
        calls = ToolCallAssembler()
        try:
            async for line in lines:
                for data in decoder.feed(line):
                    if data.strip() == "[DONE]":
                        for request in calls.finish():
                            yield request
                        return
                    for delta in chunk_deltas(self._json(data), calls):
                        yield delta
            for data in decoder.flush():
                if data.strip() != "[DONE]":
                    for delta in chunk_deltas(self._json(data), calls):
                        yield delta
            for request in calls.finish():
                yield request
        finally:
            await _finish_lines(lines)

    def _json(self, text: str) -> Mapping[str, Any]:
        try:
            value = json.loads(text)
        except ValueError:
            raise LLMError(
                f"The model endpoint {self.url} sent data that is not JSON: {text[:200]!r}."
            ) from None
        if not isinstance(value, Mapping):
            raise LLMError(f"The model endpoint {self.url} sent {text[:200]!r}, not an object.")
        if value.get("error"):  # errors reported inside a 200 stream (vLLM, proxies)
            message, code = _error_details(value)
            raise LLMError(f"The model endpoint {self.url} reported: {message}.", api_code=code)
        return value

    def _http_error(self, response: httpx.Response) -> LLMError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, Mapping) and body.get("error"):
            message, code = _error_details(body)
        else:
            message, code = response.text.strip()[:200] or response.reason_phrase, None
        status = response.status_code
        remedy = _REMEDIES.get(status)
        return LLMError(
            f"The model endpoint {self.url} refused the request (HTTP {status}): "
            f"{message.rstrip('.')}" + (f"; {remedy}." if remedy else "."),
            status=status,
            api_code=code,
        )


async def _finish_lines(lines: AsyncIterator[str]) -> None:
    """End httpx's line iterator when we stop reading before the body's end.

    ``aiter_lines`` stands on a chain of async generators (``aiter_text``,
    ``aiter_bytes``, ``aiter_raw``, the transport's stream). Closing the top
    one leaves the others suspended for the garbage collector, and trio warns
    about each. So read on, under an already-cancelled scope: whatever is
    buffered is skipped, and the first read from the network raises
    cancellation through every generator of the chain, which ends them all.
    An exhausted iterator returns at once.
    """
    with anyio.CancelScope() as scope:
        scope.cancel()
        async for _ in lines:
            pass


def _error_details(body: Mapping[str, Any]) -> tuple[str, str | None]:
    """OpenAI's ``{"error": {"message", "type", "code"}}``, or a bare string error."""
    error = body["error"]
    if isinstance(error, Mapping):
        code = error.get("code") or error.get("type")
        return str(error.get("message") or error), None if code is None else str(code)
    return str(error), None


def wire_message(message: Message) -> dict[str, Any]:
    """``message`` as chat-completions wants it.

    History written by other code may hold tool-call arguments as objects;
    the API wants them as JSON text.
    """
    out = dict(message)
    calls = out.get("tool_calls")
    if calls:
        fixed = []
        for call in calls:
            call = dict(call)
            function = dict(call.get("function") or {})
            if not isinstance(function.get("arguments", ""), str):
                function["arguments"] = json.dumps(function["arguments"], ensure_ascii=False)
            call["function"] = function
            call.setdefault("type", "function")
            fixed.append(call)
        out["tool_calls"] = fixed
    return out


class SSEDecoder:
    """Server-sent events from lines: ``data:`` lines joined until a blank line."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> Iterator[str]:
        line = line.rstrip("\r\n")
        if not line:
            yield from self.flush()
        elif line.startswith("data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(" ") else value)
        # "event:", "id:", "retry:" and ":" comments (keep-alives) carry nothing we use

    def flush(self) -> Iterator[str]:
        if self._data:
            data, self._data = "\n".join(self._data), []
            yield data


class ToolCallAssembler:
    """Whole tool calls from the fragments of ``delta.tool_calls``."""

    def __init__(self) -> None:
        self._calls: list[dict[str, Any]] = []
        self._slot_of_index: dict[int, int] = {}

    def feed(self, fragments: Iterable[Any]) -> None:
        for position, fragment in enumerate(fragments):
            if not isinstance(fragment, Mapping):
                continue
            index = fragment.get("index")
            index = index if isinstance(index, int) else position  # complete calls lack it
            function = fragment.get("function") or {}
            call_id = str(fragment.get("id") or "")
            name = str(function.get("name") or "")
            slot = self._slot_of_index.get(index)
            if slot is not None and self._starts_new_call(slot, call_id, name):
                slot = None
            if slot is None:
                self._calls.append({"id": "", "name": "", "arguments": []})
                slot = self._slot_of_index[index] = len(self._calls) - 1
            call = self._calls[slot]
            call["id"] = call["id"] or call_id
            if name and name != call["name"]:  # some servers repeat the whole name
                call["name"] += name
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                call["arguments"].append(arguments)
            elif arguments is not None:  # an object instead of JSON text
                call["arguments"].append(json.dumps(arguments))

    def _starts_new_call(self, slot: int, call_id: str, name: str) -> bool:
        """Whether a fragment at an index already seen opens another call.

        Ollama gives parallel calls all index 0, told apart by their ids;
        some servers repeat a fresh id (and the name) in every fragment of one
        call. So: a new call only when a different id and a name arrive after
        the current call's arguments are complete JSON.
        """
        call = self._calls[slot]
        if not (call_id and name and call["id"] and call_id != call["id"]):
            return False
        try:
            json.loads("".join(call["arguments"]))
        except ValueError:
            return False
        return True

    def finish(self) -> list[ToolRequest]:
        requests = []
        for call in self._calls:
            text = "".join(call["arguments"]).strip()
            arguments: Any = {}
            error = None
            try:
                arguments = json.loads(text) if text else {}
            except ValueError:
                error = f"the arguments are not valid JSON: {text[:200]!r}"
            if error is None and not isinstance(arguments, dict):
                error, arguments = f"the arguments are not a JSON object: {text[:200]!r}", {}
            requests.append(
                ToolRequest(
                    name=call["name"],
                    arguments=arguments if error is None else {},
                    call_id=call["id"] or new_call_id(),
                    arguments_error=error,
                )
            )
        self._calls.clear()
        self._slot_of_index.clear()
        return requests


def chunk_deltas(chunk: Mapping[str, Any], calls: ToolCallAssembler) -> Iterator[LLMDelta]:
    """The text and reasoning of one ``chat.completion.chunk``; tool fragments go to ``calls``."""
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
            continue  # only the first choice is ever asked for
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            yield ReasoningDelta(reasoning)
        content = delta.get("content")
        if isinstance(content, str) and content:
            yield TextDelta(content)
        if delta.get("tool_calls"):
            calls.feed(delta["tool_calls"])
        elif delta.get("function_call"):  # the deprecated single-call form
            calls.feed([{"index": 0, "function": delta["function_call"]}])


def message_deltas(completion: Mapping[str, Any]) -> Iterator[LLMDelta]:
    """The deltas of a non-streamed ``chat.completion`` (servers that ignore ``stream``)."""
    calls = ToolCallAssembler()
    for choice in (completion.get("choices") or ())[:1]:
        message = choice.get("message") or {}
        reasoning = message.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            yield ReasoningDelta(reasoning)
        if isinstance(message.get("content"), str) and message["content"]:
            yield TextDelta(message["content"])
        calls.feed(message.get("tool_calls") or ())
    yield from calls.finish()
