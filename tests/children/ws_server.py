"""A small WebSocket worker built on the independent ``websockets`` library.

Answers the text frame ``{"event": "ping"}`` with ``{"event": "pong"}`` (not
with ``--no-pong``) and echoes any other text. ``GET /health`` answers 200
``{"status": "ok"}``, or 503 with ``--fail-health``. Binds ``--port`` (0 = any
free port) on ``--host`` and prints the bound port on stdout.
"""

import argparse
import asyncio
import json
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--no-pong", action="store_true")
parser.add_argument("--fail-health", action="store_true")
args = parser.parse_args()


async def handle(websocket: ServerConnection) -> None:
    async for message in websocket:
        if not isinstance(message, str):
            continue
        try:
            event = json.loads(message)
        except ValueError:
            event = None
        if isinstance(event, dict) and event.get("event") == "ping":
            if not args.no_pong:
                await websocket.send(json.dumps({"event": "pong"}))
            continue
        await websocket.send(message)


def answer_http(connection: ServerConnection, request: Request) -> Response | None:
    if request.path != "/health":
        return None  # go on with the WebSocket handshake
    if args.fail_health:
        return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, '{"status": "unhealthy"}\n')
    return connection.respond(HTTPStatus.OK, '{"status": "ok"}\n')


async def main() -> None:
    async with serve(handle, args.host, args.port, process_request=answer_http) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await server.serve_forever()


asyncio.run(main())
