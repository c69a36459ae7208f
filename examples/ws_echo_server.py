"""A plain WebSocket worker run as a `command =` worker, supervisord-style.

It is not agentvisor's agent runtime: any program that serves WebSocket on
the port it is given can be supervised. This one echoes text frames, answers
the agent protocol's `{"event": "ping"}` with `{"event": "pong"}` (so
agentvisor's websocket health check sees it alive), and logs each connection.

    python examples/ws_echo_server.py --port 8765 [--host 127.0.0.1] [--prefix echo]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket


def reply_to(message: str, prefix: str) -> str:
    try:
        event = json.loads(message)
    except ValueError:
        event = None
    if isinstance(event, dict) and event.get("event") == "ping":
        return json.dumps({"event": "pong"})
    return f"{prefix}: {message}" if prefix else message


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("AGENTVISOR_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8765")))
    parser.add_argument("--prefix", default="")
    args = parser.parse_args()
    name = os.environ.get("AGENTVISOR_SERVICE", "echo")

    async def handle(request: WebSocketRequest) -> None:
        ws = await request.accept()
        print(f"{name}: connection from {ws.remote}", flush=True)
        try:
            while True:
                await ws.send_message(reply_to(str(await ws.get_message()), args.prefix))
        except ConnectionClosed:
            pass

    print(f"{name}: listening on ws://{args.host}:{args.port}/", flush=True)
    await serve_websocket(handle, args.host, args.port, ssl_context=None)


if __name__ == "__main__":
    try:
        trio.run(main)
    except KeyboardInterrupt:
        sys.exit(0)
