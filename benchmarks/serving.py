"""Serving many users through the real stack `make run` starts, on loopback.

The benchmark starts ``python -m lora_manager.launcher run`` (supervisord → LORA_MANAGER_HTTP_PROCESSES
daphne processes + the RQ workers) on a temporary data directory (SQLite) with a private redis-server,
catalogues the benchmarks' 10,000-file library into it with the real ``scan_library --no-hash``
command, logs in, and measures:

- HTTP: gallery pages, a search, an adapter's detail page and the dashboard, requested in turn by 1, 8
  and 32 concurrent clients (threads, one ``requests.Session`` and keep-alive connection each) for
  ``seconds`` each: requests/s, p50/p95 latency and errors (non-200 or failed requests) per level;
- websocket fan-out: ``sockets`` logged-in websockets on one generation job's progress
  (``/ws/generation/jobs/<pk>/``, all open before it is submitted) while it runs against the SD.Next STAND-IN
  (tests/standins/sdnext.py: no model, 0.1 s per step). A progress update counts as published when a
  channel-layer subscriber of the benchmark's own, in the same group, receives it (a millisecond or so
  after the worker's group_send); its fan-out latency is the time until each socket has the fragment.

Every process it starts (Redis, the stand-in, the stack) is stopped in ``finally``, even on failure.
The client runs on the same machine as the server: on 2 cores its threads take CPU from the server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

BASE_DIR = Path(__file__).resolve().parent.parent
PASSWORD = "pw-bench-serving-1234"
INSTANCE = "bench-serving"
STEP = re.compile(rb'data-step="(\d+)"')
LEVELS = (1, 8, 32)
TARGET_RATIO = 1.7
TARGET_P95_MS = 400
TARGET_FANOUT_P95_MS = 200
# Browsers open their sockets over time, not in one instant: many handshakes at once queue on each daphne's
# one sync thread (session, user, permissions, the job panel) past daphne's 5 s handshake timeout.
HANDSHAKES_AT_ONCE = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")


def wait_for(check, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if value := check():
                return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Processes:
    """The stand-in and the stack, each in its own session; stopped (then killed) in reverse order."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], env: dict, log: Path) -> subprocess.Popen:
        with open(log, "ab") as out:
            process = subprocess.Popen(
                args, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append((name, process))
        return process

    def stop_all(self) -> None:
        for _name, process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # the launcher stops supervisord, daphne and the workers
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)


def stack_env(data_dir: Path, redis_url: str, sdnext_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "REDIS_URL"))}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "lora_manager.settings",
            "LORA_MANAGER_DATA_DIR": str(data_dir),
            "LORA_MANAGER_REDIS_URL": redis_url,
            "LORA_MANAGER_SDNEXT_URL": sdnext_url,
            "LORA_MANAGER_ADMIN_PASSWORD": PASSWORD,
            "LORA_MANAGER_INSTANCE": INSTANCE,  # the channel layer's prefix, for the benchmark's subscriber
            "LORA_MANAGER_RESCAN_INTERVAL_MINUTES": "0",
            "LORA_MANAGER_BACKUP_INTERVAL_HOURS": "0",
            "LORA_MANAGER_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LORA_MANAGER_LIBRARY_DIRS": "",
        }
    )
    return env


def catalogue(library: Path, env: dict) -> dict:
    """The real scanner into the stack's database (headers and sidecars; hashing is not what we measure)."""
    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    started = time.perf_counter()
    subprocess.run(
        [*manage, "scan_library", "--no-hash", str(library)],
        cwd=BASE_DIR, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return {"catalogue_scan_s": round(time.perf_counter() - started, 1)}


def wait_for_embeddings(database: Path, timeout: float = 900) -> float:
    """The scan queued the library's first embedding run (the model on the CPU, both cores for a minute
    or more): measure the stack once it is idle, as it is after the first catalogue."""
    started = time.perf_counter()

    def finished() -> bool:
        with sqlite3.connect(database, timeout=10) as db:
            active = "SELECT count(*) FROM recommendations_embeddingrun WHERE status IN ('queued', 'running')"
            return db.execute(active).fetchone()[0] == 0

    wait_for(finished, timeout, "the first embedding run to finish", interval=1)
    return round(time.perf_counter() - started, 1)


def skip_embeddings(database: Path, redis_url: str) -> None:
    """Cancel the embedding run the scan queued, before any worker runs it (LORA_MANAGER_BENCH_SERVING_EMBEDDINGS=
    skip): on a busy machine it keeps both cores for many minutes. Detail pages then list no similar adapters."""
    import redis
    from rq import Queue

    Queue("embeddings", connection=redis.Redis.from_url(redis_url)).empty()
    with sqlite3.connect(database, timeout=10) as db:
        db.execute(
            "UPDATE recommendations_embeddingrun SET status = 'failed', message = 'skipped by the serving benchmark',"
            " finished_at = CURRENT_TIMESTAMP WHERE status IN ('queued', 'running')"
        )


def login(base: str) -> requests.Session:
    session = requests.Session()
    session.get(base + "/accounts/login/", timeout=30)
    response = session.post(
        base + "/accounts/login/",
        data={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        timeout=30,
    )
    if response.status_code != 200 or "sessionid" not in session.cookies:
        raise RuntimeError(f"login failed: {response.status_code} {response.text[:300]}")
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session


def request_mix(database: Path, pages: int = 20) -> list[tuple[str, str]]:
    """(kind, path) in the order each client cycles through: gallery pages, a search, details, the dashboard."""
    with sqlite3.connect(database) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM adapters_adapter ORDER BY random() LIMIT ?", (pages,))]
    mix = []
    for page, pk in zip(range(1, pages + 1), ids, strict=False):
        mix += [
            ("gallery", f"/library/?page={page}"),
            ("search", f"/library/?q={['pixel', 'knight', 'neon', 'castle'][page % 4]}"),
            ("detail", f"/library/{pk}/"),
            ("dashboard", "/"),
        ]
    return mix


def load_level(
    base: str, cookies: dict, mix: list[tuple[str, str]], clients: int, seconds: float, top: bool = False
) -> dict:
    """``clients`` threads request the mix in turn (each from its own offset) for ``seconds``."""
    samples: list[tuple[str, float]] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at: list[float] = []

    def client(offset: int) -> None:
        session = requests.Session()
        session.cookies.update(cookies)
        session.get(base + "/healthz", timeout=30)  # open the keep-alive connection before the clock starts
        mine: list[tuple[str, float]] = []
        failed: list[str] = []
        start.wait()
        for kind, path in itertools.islice(itertools.cycle(mix), offset % len(mix), None):
            began = time.perf_counter()
            if began >= stop_at[0]:
                break
            try:
                response = session.get(base + path, timeout=30, allow_redirects=False)
                ok = response.status_code == 200
                if not ok:
                    failed.append(f"{path}: {response.status_code}")
            except requests.RequestException as exc:
                ok = False
                failed.append(f"{path}: {exc.__class__.__name__}")
            if ok:
                mine.append((kind, (time.perf_counter() - began) * 1000))
        session.close()
        with lock:
            samples.extend(mine)
            errors.extend(failed)

    threads = [threading.Thread(target=client, args=(i * 7,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at.append(time.perf_counter() + 3600)
    start.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join(seconds + 60)
    elapsed = time.perf_counter() - began  # includes the requests in flight at the deadline
    latencies = [ms for _, ms in samples]
    result = {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(samples) + len(errors),
        "requests_per_s": round(len(samples) / elapsed, 1),
        "ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "ms_p95": round(percentile(latencies, 0.95), 1) if latencies else None,
        "errors": len(errors),
        "target_errors": 0,
    }
    for kind in dict(mix):
        of_kind = [ms for k, ms in samples if k == kind]
        if of_kind:
            result[f"{kind}_ms_p50"] = round(statistics.median(of_kind), 1)
            result[f"{kind}_ms_p95"] = round(percentile(of_kind, 0.95), 1)
    if top:
        result["target_ms_p95_max"] = TARGET_P95_MS
    if errors:
        result["first_errors"] = errors[:5]
    return result


# --- websockets -------------------------------------------------------------------------------------


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


# --- the whole run ----------------------------------------------------------------------------------


def run(
    seconds: float | None = None, sockets: int = 200, levels: tuple[int, ...] = LEVELS, library: Path | None = None
) -> list[dict]:
    from benchmarks.library import default_library
    from lora_manager.launcher import RedisProcess
    from ops.supervise import http_processes

    seconds = float(os.environ.get("LORA_MANAGER_BENCH_SERVING_SECONDS", "10")) if seconds is None else seconds
    library = default_library() if library is None else library
    from django.conf import settings

    data_dir = Path(tempfile.mkdtemp(prefix="lm-bench-serving-"))
    log = settings.DATA_DIR / "serving-stack.log"  # kept after the run (the data directory is not)
    log.unlink(missing_ok=True)
    processes = Processes()
    redis = None
    try:
        redis = RedisProcess(data_dir, persist=False)
        sdnext_port, port = free_port(), free_port()
        sdnext_url, base = f"http://127.0.0.1:{sdnext_port}", f"http://127.0.0.1:{port}"
        env = stack_env(data_dir, redis.url, sdnext_url)
        standin = [sys.executable, "-m", "tests.standins.sdnext", "--port", str(sdnext_port), "--step-delay", "0.1"]
        processes.start("sdnext-standin", standin, env, log)
        summary = {"library_files": sum(1 for _ in library.rglob("*.safetensors")), **catalogue(library, env)}
        database = data_dir / "lora_manager.sqlite3"
        embeddings = os.environ.get("LORA_MANAGER_BENCH_SERVING_EMBEDDINGS", "wait")
        if embeddings == "skip":
            skip_embeddings(database, redis.url)
        summary["embeddings"] = embeddings
        stack = processes.start(
            "stack", [sys.executable, "-m", "lora_manager.launcher", "run", "--port", str(port)], env, log
        )
        ready = lambda: stack.poll() is None and requests.get(base + "/readyz", timeout=5).status_code == 200  # noqa: E731
        wait_for(ready, 300, f"the stack to be ready (log: {log})", interval=0.5)
        session = login(base)
        summary["embedding_wait_s"] = wait_for_embeddings(database)
        mix = request_mix(database)
        load_level(base, session.cookies.get_dict(), mix, 8, 3)  # warm-up: every process, template and cache
        cookies, low, high = session.cookies.get_dict(), min(levels), max(levels)
        results = [load_level(base, cookies, mix, clients, seconds, clients == high) for clients in levels]
        by_clients = {r["clients"]: r for r in results}
        one, most = by_clients[low], by_clients[high]
        summary.update(
            {
                "http_processes": http_processes(env),
                "cores": os.cpu_count(),
                "load_average_1m_before": round(os.getloadavg()[0], 2),
                "database": "sqlite",
                f"throughput_{high}_vs_{low}": round(most["requests_per_s"] / max(one["requests_per_s"], 0.01), 2),
                f"target_throughput_{high}_vs_{low}_min": TARGET_RATIO,
                "errors_all_levels": sum(r["errors"] for r in results),
                "target_errors": 0,
            }
        )
        summary.update(fanout(base, port, session, redis.url, database, sockets))
        summary["load_average_1m_after"] = round(os.getloadavg()[0], 2)
        return [{"case": f"http_{r['clients']}_clients", **r} for r in results] + [{"case": "summary", **summary}]
    except BaseException:
        if log.is_file():
            print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    finally:
        processes.stop_all()
        if redis is not None:
            redis.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
