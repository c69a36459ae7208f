"""A tiny agent-protocol worker (PROTOCOL.md §1) on the independent ``websockets`` library.

Just enough of the protocol for the router's tests: sessions whose history
lives in a store shared by replicas (one JSON file per session in
``--store``), so another replica can resume them; ``user.message`` answered
with ``agent.final_answer`` naming the whole history; ``user.resume_session``
replaying the events after ``last_seq``; ``ping`` → ``pong``.

Test hooks (client → worker): ``test.flood`` {count, size} sends that many
text frames as fast as it can; ``test.headers`` answers the upgrade request's
headers and path (and the subprotocol); a wrapped message (``proxy_metadata``)
is answered with ``wrapped`` carrying the envelope; ``test.close`` {code}
closes with that code. A message whose content starts with ``slow:`` takes
``--slow`` seconds to answer (a turn in flight). ``GET /health`` → 200.
Prints the bound port; SIGTERM closes every connection with 1001 and exits.
"""

import argparse
import asyncio
import json
import os
import signal
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--store", required=True)
parser.add_argument("--name", default="agent")
parser.add_argument("--slow", type=float, default=1.0)
parser.add_argument("--subprotocol", action="append", default=[])
args = parser.parse_args()


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def load(session_id: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(args.store, session_id + ".json")) as file:
            data: dict[str, Any] = json.load(file)
            return data
    except FileNotFoundError:
        return None


def save(session_id: str, session: dict[str, Any]) -> None:
    path = os.path.join(args.store, session_id + ".json")
    with open(path + ".tmp", "w") as file:
        json.dump(session, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(path + ".tmp", path)


async def emit(
    ws: ServerConnection, session_id: str, session: dict[str, Any], event: dict[str, Any]
) -> None:
    session["seq"] += 1
    event = {**event, "session_id": session_id, "seq": session["seq"], "timestamp": now()}
    session["events"] = [*session["events"][-50:], event]
    save(session_id, session)
    await ws.send(json.dumps(event))


async def handle(ws: ServerConnection) -> None:
    async for raw in ws:
        if not isinstance(raw, str):
            await ws.send(raw)  # binary: echoed
            continue
        try:
            event = json.loads(raw)
        except ValueError:
            await ws.send(
                json.dumps(
                    {
                        "event": "agent.error",
                        "code": "INVALID_MESSAGE",
                        "message": "not JSON",
                        "recoverable": True,
                        "timestamp": now(),
                    }
                )
            )
            continue
        await dispatch(ws, event)


async def dispatch(ws: ServerConnection, event: dict[str, Any]) -> None:
    name = event.get("event")
    if "proxy_metadata" in event:  # the router's wrap_messages envelope
        await ws.send(json.dumps({"event": "wrapped", "envelope": event}))
    elif name == "ping":
        await ws.send(json.dumps({"event": "pong", "timestamp": now()}))
    elif name == "user.create_session":
        session_id = uuid.uuid4().hex
        session = {"history": [], "events": [], "seq": 0, "metadata": event.get("metadata")}
        await emit(
            ws, session_id, session, {"event": "agent.session_created", "served_by": args.name}
        )
    elif name == "user.message":
        session_id = event.get("session_id")
        session = load(session_id) if session_id else None
        if session_id and session is None:
            await ws.send(
                json.dumps(
                    {
                        "event": "agent.error",
                        "session_id": session_id,
                        "code": "SESSION_NOT_FOUND",
                        "message": "no such session",
                        "recoverable": False,
                        "timestamp": now(),
                    }
                )
            )
            return
        if session is None:
            session_id = uuid.uuid4().hex
            session = {"history": [], "events": [], "seq": 0}
            await emit(
                ws, session_id, session, {"event": "agent.session_created", "served_by": args.name}
            )
        assert session_id is not None
        content = str(event.get("content", ""))
        session["history"].append(content)
        save(session_id, session)
        if content.startswith("slow:"):
            await emit(ws, session_id, session, {"event": "agent.thinking", "content": "hmm"})
            await asyncio.sleep(args.slow)
        answer = {
            "event": "agent.final_answer",
            "content": " | ".join(session["history"]),
            "history_length": len(session["history"]),
            "served_by": args.name,
        }
        if "message_id" in event:
            answer["message_id"] = event["message_id"]
        await emit(ws, session_id, session, answer)
    elif name == "user.resume_session":
        session_id = str(event.get("session_id"))
        session = load(session_id)
        if session is None:
            await ws.send(
                json.dumps(
                    {
                        "event": "agent.error",
                        "session_id": session_id,
                        "code": "SESSION_NOT_FOUND",
                        "message": "no such session",
                        "recoverable": False,
                        "timestamp": now(),
                    }
                )
            )
            return
        last_seq = event.get("last_seq")
        replay = [e for e in session["events"] if last_seq is None or e["seq"] > last_seq]
        for old in replay:
            await ws.send(json.dumps(old))
        await emit(
            ws,
            session_id,
            session,
            {
                "event": "agent.session_resumed",
                "replayed": len(replay),
                "history_length": len(session["history"]),
                "served_by": args.name,
            },
        )
    elif name == "test.flood":
        chunk = "x" * int(event.get("size", 1000))
        for number in range(int(event.get("count", 1000))):
            await ws.send(json.dumps({"event": "flood", "n": number, "data": chunk}))
    elif name == "test.headers":
        request = ws.request
        assert request is not None
        headers = {key.lower(): value for key, value in request.headers.raw_items()}
        await ws.send(
            json.dumps(
                {
                    "event": "headers",
                    "headers": headers,
                    "path": request.path,
                    "subprotocol": ws.subprotocol,
                    "served_by": args.name,
                }
            )
        )
    elif name == "test.close":
        await ws.close(int(event.get("code", 1000)), "asked to")
    else:
        await ws.send(
            json.dumps(
                {
                    "event": "agent.error",
                    "code": "UNKNOWN_EVENT",
                    "message": str(name),
                    "recoverable": True,
                    "timestamp": now(),
                }
            )
        )


def answer_http(connection: ServerConnection, request: Request) -> Response | None:
    if request.path != "/health":
        return None
    return connection.respond(HTTPStatus.OK, '{"status": "ok"}\n')


async def main() -> None:
    os.makedirs(args.store, exist_ok=True)
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    options: dict[str, Any] = {"compression": None, "max_size": None}
    if args.subprotocol:
        options["subprotocols"] = args.subprotocol
    async with serve(
        handle, args.host, args.port, process_request=answer_http, **options
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await stop
        server.close(close_connections=True)
        await server.wait_closed()


asyncio.run(main())
