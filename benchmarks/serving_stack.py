"""The real stack the serving benchmark measures (``benchmarks/serving.py``): its environment, its
processes started and stopped, the library catalogued into it, the first embedding run waited for (or
skipped), the admin logged in; and the two small helpers both measurements use (waiting, percentiles)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import requests

BASE_DIR = Path(__file__).resolve().parent.parent
PASSWORD = "pw-bench-serving-1234"
INSTANCE = "bench-serving"


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
