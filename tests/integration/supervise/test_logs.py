"""Log capture: line pumping from real pipes, rotating files, the in-memory book."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import trio
import trio.testing

from agentvisor.supervise.logs import LogBook, LogLine, RotatingLogFile, pump_lines
from agentvisor.supervise.process import open_launcher
from tests.children import child_spec, running

DEADLINE = 10


class Chunks(trio.abc.ReceiveStream):
    """Delivers exactly the given chunks, one per receive_some, then EOF."""

    def __init__(self, *chunks: bytes) -> None:
        self._chunks = list(chunks)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return self._chunks.pop(0) if self._chunks else b""

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def pumped(*chunks: bytes, max_line_bytes: int = 65536) -> list[list[str]]:
    calls: list[list[str]] = []
    await pump_lines(Chunks(*chunks), calls.append, max_line_bytes=max_line_bytes)
    return calls


async def test_one_callback_per_chunk_with_all_its_complete_lines() -> None:
    calls = await pumped(b"a\nb\nc", b"d\ne\n", b"f\n")
    assert calls == [["a", "b"], ["cd", "e"], ["f"]]


async def test_a_chunk_without_a_complete_line_calls_nothing() -> None:
    assert await pumped(b"par", b"tial", b" line\n") == [["partial line"]]


async def test_an_unfinished_last_line_is_delivered_at_eof() -> None:
    assert await pumped(b"one\ntwo") == [["one"], ["two"]]


async def test_crlf_and_invalid_utf8() -> None:
    calls = await pumped(b"dos line\r\n\xff\xfeok\n\xe2\x82\n")
    assert calls == [["dos line", "\ufffd\ufffdok", "\ufffd"]]


async def test_long_lines_are_cut_into_pieces() -> None:
    calls = await pumped(b"x" * 25 + b"\nshort\n", max_line_bytes=10)
    assert calls == [["x" * 10, "x" * 10, "x" * 5, "short"]]


async def test_a_line_without_newline_is_cut_as_it_grows() -> None:
    calls = await pumped(b"y" * 8, b"y" * 8, b"y" * 8, max_line_bytes=10)
    assert calls == [["y" * 10], ["y" * 10], ["y" * 4]]


async def test_cuts_fall_on_character_boundaries() -> None:
    calls = await pumped("é".encode() * 10 + b"\n", max_line_bytes=5)  # 2 bytes each
    assert calls == [["éé", "éé", "éé", "éé", "éé"]]


async def test_a_closed_stream_ends_the_pump_like_eof() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    calls: list[list[str]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump_lines, receive, calls.append)
        await send.send_all(b"last words")
        await trio.testing.wait_all_tasks_blocked()
        await receive.aclose()
    assert calls == [["last words"]]


async def test_a_log_flood_from_a_real_child_is_batched() -> None:
    lines = 20000
    calls: list[list[str]] = []
    async with (
        open_launcher() as launcher,
        running(launcher, child_spec("log_flood.py", "--lines", str(lines))) as child,
    ):
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump_lines, child.stdout, calls.append)
                # "done" on stderr: everything is written; then end the child (EOF)
                await child.stderr.receive_some()
                child.kill_group()
    received = [line for call in calls for line in call]
    assert len(received) == lines
    assert received[0].startswith("line 0 ")
    assert received[-1].startswith(f"line {lines - 1} ")
    assert len(calls) < lines / 20  # batched: 81-byte lines, 64 KiB reads from a full pipe


def test_log_file_lines_carry_an_iso_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "svc.0.stdout.log"
    log = RotatingLogFile(str(path), max_bytes=0, backups=0)
    at = datetime.datetime(2024, 5, 1, 12, 30, 15, 250000).astimezone()
    log.write_lines(["hello", "wörld"], at=at.timestamp())
    log.close()
    stamp = at.isoformat(timespec="milliseconds")
    assert path.read_text() == f"{stamp} hello\n{stamp} wörld\n"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.250[+-]\d\d:\d\d", stamp)


def test_log_file_rotates_and_keeps_backups(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "svc.0.stdout.log"
    log = RotatingLogFile(str(path), max_bytes=200, backups=2)
    texts = [f"line {i:03d}" for i in range(60)]  # each record: 29 + 1 + 8 + 1 bytes
    for start in range(0, 60, 7):
        log.write_lines(texts[start : start + 7], at=0.0)
    log.close()
    files = [path.with_name(path.name + suffix) for suffix in (".2", ".1", "")]
    assert not path.with_name(path.name + ".3").exists()
    assert all(0 < file.stat().st_size <= 200 for file in files)
    kept = [line.split(" ", 1)[1] for file in files for line in file.read_text().splitlines()]
    assert kept == texts[-len(kept) :]  # the newest lines, in order, nothing torn


def test_log_file_without_backups_truncates(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    log = RotatingLogFile(str(path), max_bytes=100, backups=0)
    for i in range(20):
        log.write_lines([f"entry {i}"], at=0.0)
    log.close()
    assert not (tmp_path / "x.log.1").exists()
    assert path.read_text().splitlines()[-1].endswith("entry 19")
    assert path.stat().st_size <= 100


def test_log_file_appends_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    for word in ("first", "second"):
        log = RotatingLogFile(str(path), max_bytes=10_000, backups=1)
        log.write_lines([word], at=0.0)
        log.close()
    assert [line.split(" ", 1)[1] for line in path.read_text().splitlines()] == ["first", "second"]


def test_logbook_numbers_lines_and_tails_oldest_first() -> None:
    book = LogBook("svc")
    book.append(0, "stdout", ["a", "b"], at=1.0)
    appended = book.append(1, "stderr", ["c"], at=2.0)
    book.append(0, "stderr", ["d"], at=3.0)
    assert list(appended) == [LogLine(3, 2.0, "svc", 1, "stderr", "c")]
    assert book.last_seq == 4
    assert [line.text for line in book.tail()] == ["a", "b", "c", "d"]
    assert [line.text for line in book.tail(2)] == ["c", "d"]
    assert [line.text for line in book.tail(stream="stderr")] == ["c", "d"]
    assert [line.text for line in book.tail(replica=0)] == ["a", "b", "d"]
    assert [line.text for line in book.tail(replica=0, stream="stdout", limit=1)] == ["b"]
    assert [line.seq for line in book.tail(since_seq=2)] == [3, 4]


def test_logbook_forgets_beyond_capacity() -> None:
    book = LogBook("svc", capacity=3)
    book.append(0, "stdout", [str(i) for i in range(5)], at=0.0)
    assert [line.seq for line in book.tail()] == [3, 4, 5]


async def test_wait_beyond_wakes_on_a_later_line() -> None:
    book = LogBook("svc")
    book.append(0, "stdout", ["old"], at=0.0)
    with trio.fail_after(DEADLINE):
        await book.wait_beyond(0)  # already there: returns at once
        woke = trio.Event()

        async def follower() -> None:
            await book.wait_beyond(book.last_seq)
            woke.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follower)
            await trio.testing.wait_all_tasks_blocked()
            assert not woke.is_set()
            book.append(0, "stdout", [], at=1.0)  # nothing appended: no wake-up
            await trio.testing.wait_all_tasks_blocked()
            assert not woke.is_set()
            book.append(0, "stdout", ["new"], at=1.0)
        assert woke.is_set()
