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

The stack is started and stopped by ``benchmarks/serving_stack.py``, the websocket fan-out measured by
``benchmarks/serving_fanout.py``; this module measures HTTP and runs the whole.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from benchmarks.serving_fanout import fanout
from benchmarks.serving_stack import (
    Processes,
    catalogue,
    free_port,
    login,
    percentile,
    skip_embeddings,
    stack_env,
    wait_for,
    wait_for_embeddings,
)

LEVELS = (1, 8, 32)
TARGET_RATIO = 1.7
TARGET_P95_MS = 400


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
