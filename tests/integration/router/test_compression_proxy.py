"""permessage-deflate on a transparent route: the backend decides (issue 11.10).

A plain ``command =`` backend is neither read nor failed over, so the router passes
the client's permessage-deflate offer to it and its answer back, and the frames,
RSV1 included, cross untouched. Both ends are ``websockets`` (the backend in a
thread); each case checks what each leg agreed and that every payload (small, over
the 64 KiB the router holds back, fragmented) comes back with the same hash.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest
import trio
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection

from tests.integration.router.harness import running_router
from tests.integration.router.test_proxy import DEADLINE, backend, source

SIZES = (10, 5_000, 200_000)


def payload(size: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("abcdefghij klmnopqrst") for _ in range(size))


def digest(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def echo(ws: ServerConnection) -> None:
    ws.send(",".join(type(e).__name__ for e in ws.protocol.extensions) or "none")
    for message in ws:
        ws.send(message)


def talk(url: str, offer: str | None) -> dict[str, Any]:
    """Send each payload (and one in fragments); the backend's extensions, the client's
    and the hashes of what came back."""
    sent, got = [], []
    with connect(url, compression=offer, open_timeout=DEADLINE, max_size=None) as ws:
        backend_side = ws.recv(timeout=DEADLINE)
        for seed, size in enumerate(SIZES):
            message = payload(size, seed)
            ws.send(message)
            sent.append(digest(message))
            got.append(digest(ws.recv(timeout=DEADLINE)))
        pieces = [payload(30_000, 10 + n) for n in range(4)]
        ws.send(pieces)  # one message in four frames
        sent.append(digest("".join(pieces)))
        got.append(digest(ws.recv(timeout=DEADLINE)))
        client_side = ",".join(type(e).__name__ for e in ws.protocol.extensions) or "none"
    return {"backend": backend_side, "client": client_side, "sent": sent, "got": got}


@pytest.mark.parametrize(
    ("offer", "backend_compression", "router", "agreed"),
    [
        ("deflate", "deflate", "", "PerMessageDeflate"),
        ("deflate", None, "", "none"),  # the backend declines: so does the client's leg
        (None, "deflate", "", "none"),  # nothing offered, nothing agreed
        ("deflate", "deflate", "compression = false", "none"),  # the operator's switch
    ],
)
async def test_a_transparent_backend_answers_the_clients_offer(
    tmp_path: Path, offer: str | None, backend_compression: str | None, router: str, agreed: str
) -> None:
    with backend(echo, compression=backend_compression) as server:
        async with running_router(source(tmp_path, server.port, router=router)) as running:
            result = await trio.to_thread.run_sync(talk, running.url, offer)
            stats = running.router.statistics()

    assert result["backend"] == agreed
    assert result["client"] == agreed
    assert result["got"] == result["sent"]
    total = sum(SIZES) + 4 * 30_000
    if agreed == "none":
        assert stats.bytes_out > total
    else:
        assert stats.bytes_out < 0.8 * total  # compressed end to end, not by the router
