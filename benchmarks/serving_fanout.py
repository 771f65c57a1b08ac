"""The serving benchmark's websocket fan-out: ``sockets`` logged-in websockets on one generation job's
progress, all open before it is submitted, while it runs against the SD.Next STAND-IN. A progress update
counts as published when the benchmark's own channel-layer subscriber (``Tap``) in the job's group
receives it; its fan-out latency is the time until each socket has the fragment."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sqlite3
import statistics
import threading
import time
from pathlib import Path

import requests

from benchmarks.serving_stack import INSTANCE, percentile, wait_for

STEP = re.compile(rb'data-step="(\d+)"')
TARGET_FANOUT_P95_MS = 200
# Browsers open their sockets over time, not in one instant: many handshakes at once queue on each daphne's
# one sync thread (session, user, permissions, the job panel) past daphne's 5 s handshake timeout.
HANDSHAKES_AT_ONCE = 4


async def open_websocket(port: int, path: str, cookie: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An RFC 6455 handshake over asyncio streams (the server's frames are never masked)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
            f"Cookie: {cookie}\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"websocket refused: {head[:80]!r}")
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(length)


class Tap(threading.Thread):
    """The benchmark's own subscriber to the job's channel group, on its own event loop and thread:
    stamps when each progress step is published."""

    def __init__(self, redis_url: str, group: str) -> None:
        super().__init__(daemon=True)
        self.redis_url, self.group = redis_url, group
        self.published: dict[int, float] = {}
        self.ready = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self.listen())

    async def listen(self) -> None:
        from django.conf import settings
        from django.utils.module_loading import import_string

        configured = settings.CHANNEL_LAYERS["default"]  # the stack's layer, on the stack's Redis
        config = {**configured.get("CONFIG", {}), "hosts": [self.redis_url], "prefix": f"lora_manager:{INSTANCE}:"}
        layer = import_string(configured["BACKEND"])(**config)
        channel = await layer.new_channel()
        await layer.group_add(self.group, channel)
        self.ready.set()
        try:
            while not self.stopping.is_set():
                try:
                    message = await asyncio.wait_for(layer.receive(channel), 1)
                except TimeoutError:
                    continue
                at = time.perf_counter()
                if message.get("type") == "job.progress" and message["job"]["status"] == "running":
                    self.published.setdefault(int(message["job"]["step"]), at)
        finally:
            await layer.group_discard(self.group, channel)
            if hasattr(layer, "close_pools"):
                await layer.close_pools()
            else:
                await layer.flush()


class Watchers:
    """``count`` websockets on ``path``, opened HANDSHAKES_AT_ONCE at a time; per socket, when each step's
    fragment first arrived."""

    def __init__(self, port: int, path: str, cookie: str, count: int) -> None:
        self.port, self.path, self.cookie, self.count = port, path, cookie, count
        self.received: list[dict[int, float]] = []
        self.connected = float("inf")  # when the last socket was open
        self.open_s = 0.0
        self.refused = self.frames = self.closed = self.failed = 0
        self.done = asyncio.Event()

    async def one(self, handshakes: asyncio.Semaphore) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        async with handshakes:
            try:
                return await asyncio.wait_for(open_websocket(self.port, self.path, self.cookie), 30)
            except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError):
                return None

    async def read(self, index: int, reader: asyncio.StreamReader) -> None:
        """Until cancelled (no timeout around a read: a cancelled read could lose half a frame)."""
        while True:
            opcode, payload = await read_frame(reader)
            at = time.perf_counter()
            self.frames += 1
            if opcode == 8:
                self.closed += 1
                return
            if b'data-status="running"' in payload and (match := STEP.search(payload)):
                self.received[index].setdefault(int(match.group(1)), at)

    async def run(self) -> None:
        handshakes = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
        began = time.perf_counter()
        attempts = await asyncio.gather(*(self.one(handshakes) for _ in range(self.count)))
        opened = [pair for pair in attempts if pair is not None]
        self.refused = self.count - len(opened)
        self.received = [{} for _ in opened]
        readers = [asyncio.create_task(self.read(i, reader)) for i, (reader, _) in enumerate(opened)]
        self.connected = time.perf_counter()
        self.open_s = self.connected - began
        await self.done.wait()
        for reader_task in readers:
            reader_task.cancel()
        outcomes = await asyncio.gather(*readers, return_exceptions=True)
        self.failed = sum(1 for o in outcomes if isinstance(o, Exception) and not isinstance(o, asyncio.CancelledError))
        for _, writer in opened:
            writer.close()

    def samples(self) -> int:
        return sum(len(per_socket) for per_socket in self.received)


def fanout(base: str, port: int, session: requests.Session, redis_url: str, database: Path, sockets: int) -> dict:
    """Every socket is open on the job's page before the job is submitted: a first, one-step job warms the
    worker and tells the next job's id (ids only grow, and nothing else submits jobs here)."""
    from generation.progress import JOB_GROUP

    def submit(steps: int, prompt: str) -> int:
        body = {"prompt": prompt, "steps": steps, "width": 64, "height": 64}
        response = session.post(base + "/api/v1/generation/jobs", json=body, timeout=30)
        if response.status_code != 201:
            raise RuntimeError(f"job refused: {response.status_code} {response.text[:300]}")
        return response.json()["id"]

    def status(pk: int) -> str:
        with sqlite3.connect(database, timeout=10) as db:
            row = db.execute("SELECT status FROM generation_generationjob WHERE id = ?", (pk,)).fetchone()
        return row[0] if row else ""

    first = submit(1, "serving benchmark: warms the worker")
    wait_for(lambda: status(first) not in ("queued", "running"), 120, "the first job to finish")
    measured = first + 1
    tap = Tap(redis_url, JOB_GROUP.format(pk=measured))
    tap.start()
    tap.ready.wait(30)
    cookie = f"sessionid={session.cookies['sessionid']}"
    watchers = Watchers(port, f"/ws/generation/jobs/{measured}/", cookie, sockets)

    async def main() -> None:
        task = asyncio.create_task(watchers.run())
        while watchers.connected == float("inf") and not task.done():
            await asyncio.sleep(0.2)
        if (pk := await asyncio.to_thread(submit, 100, "serving benchmark: watched by every socket")) != measured:
            raise RuntimeError(f"the watched job got id {pk}, not {measured}: something else submitted a job")
        while status(measured) in ("queued", "running"):
            await asyncio.sleep(0.2)
        last, still = -1, time.monotonic()  # then until the sockets have been quiet for 5 s (at most 120 s)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and time.monotonic() - still < 5:
            if (now := watchers.frames) != last:
                last, still = now, time.monotonic()
            await asyncio.sleep(0.2)
        watchers.done.set()
        await task

    try:
        asyncio.run(main())
    finally:
        tap.stopping.set()
        tap.join(10)
    connected, received = watchers.connected, watchers.received
    steps = {step: at for step, at in tap.published.items() if at > connected}
    latencies, missed = [], 0
    for per_socket in received:
        for step, published in steps.items():
            if step in per_socket:
                latencies.append((per_socket[step] - published) * 1000)
            else:
                missed += 1
    return {
        "fanout_sockets": sockets,
        "fanout_open_all_s": round(watchers.open_s, 2),
        "fanout_handshakes_at_once": HANDSHAKES_AT_ONCE,
        "fanout_handshake_errors": watchers.refused,
        "fanout_frames": watchers.frames,
        "fanout_closed_by_server": watchers.closed,
        "fanout_read_errors": watchers.failed,
        "fanout_job_status": status(measured),
        "fanout_updates": len(steps),
        "fanout_samples": len(latencies),
        "fanout_missed": missed,
        "fanout_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "fanout_ms_p95": round(percentile(latencies, 0.95), 1) if latencies else None,
        "fanout_ms_max": round(max(latencies), 1) if latencies else None,
        "target_fanout_ms_p95_max": TARGET_FANOUT_P95_MS,
        "sdnext": "STAND-IN (tests/standins/sdnext.py, 0.1 s per step)",
    }
