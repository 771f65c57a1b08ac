"""Real processes for fault tests: a Redis server the test starts, stops and starts again on the same
port, and the whole `make run` stack (launcher → supervisord → daphne + workers) on free ports with its
own data directory and that Redis. Its database is the engine the suite runs on: SQLite in its data
directory, or, when the suite runs on PostgreSQL, a fresh PostgreSQL database of its own (dropped
afterwards), so the faults are seen through `make run` on both. Nothing here is mocked."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests

from tests.faults.waiting import wait_until

BASE_DIR = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "pw-admin-stack-1234"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server on a fixed free port, without persistence: a restart comes back empty."""

    def __init__(self, directory: Path) -> None:
        self.port, self.directory = free_port(), directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def start(self) -> RedisServer:
        server = shutil.which("redis-server")
        assert server, "redis-server must be on PATH for the fault tests"
        self.process = subprocess.Popen(
            [
                server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self.answers, 10, f"redis-server on port {self.port}")
        return self

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1).ping())
        except redis.exceptions.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


def _suite_postgres() -> dict | None:
    """The suite's database settings when it runs on PostgreSQL (the configured ones, not the test copy)."""
    from django.conf import settings

    config = settings.DATABASES["default"]
    return config if config["ENGINE"].endswith("postgresql") else None


class StackDatabase:
    """The stack's own PostgreSQL database on the suite's server: created empty, dropped afterwards. Its name
    is the suite's database name plus a random suffix, never the suite's database or its test copy."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.name = f"{config['NAME']}_stack_{uuid.uuid4().hex[:8]}"
        self._admin("CREATE DATABASE {}")

    def _connect(self, dbname: str):
        import psycopg

        return psycopg.connect(
            dbname=dbname,
            host=self.config.get("HOST") or "localhost",
            port=self.config.get("PORT") or 5432,
            user=self.config.get("USER") or None,
            password=self.config.get("PASSWORD") or None,
            autocommit=True,
            connect_timeout=10,
        )

    def _admin(self, statement: str) -> None:
        from psycopg import sql

        with self._connect("postgres") as db:
            db.execute(sql.SQL(statement).format(sql.Identifier(self.name)))

    @property
    def url(self) -> str:
        from urllib.parse import quote

        auth = quote(self.config.get("USER") or "")
        if self.config.get("PASSWORD"):
            auth += ":" + quote(self.config["PASSWORD"])
        host = self.config.get("HOST") or "localhost"
        return f"postgres://{auth}@{host}:{self.config.get('PORT') or 5432}/{self.name}"

    def fetchone(self, query: str, params: tuple = ()) -> tuple | None:
        with self._connect(self.name) as db:
            return db.execute(query.replace("?", "%s"), params).fetchone()

    def drop(self) -> None:
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)")


class Stack:
    """``python -m lora_manager.launcher run`` in its own session; its output is kept in ``self.log``."""

    def __init__(self, data_dir: Path, redis_url: str, sdnext_url: str, extra_env: dict | None = None) -> None:
        self.port, self.data_dir = free_port(), data_dir
        postgres = _suite_postgres()
        self.database = StackDatabase(postgres) if postgres else None
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "REDIS_URL"))}
        env.update(
            {
                "LORA_MANAGER_DATA_DIR": str(data_dir),
                "LORA_MANAGER_REDIS_URL": redis_url,
                "LORA_MANAGER_SDNEXT_URL": sdnext_url,
                "LORA_MANAGER_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "LORA_MANAGER_RESCAN_INTERVAL_MINUTES": "0",
                "LORA_MANAGER_BACKUP_INTERVAL_HOURS": "0",
                "LORA_MANAGER_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DJANGO_SETTINGS_MODULE": "lora_manager.settings",
            }
        )
        if self.database is not None:
            env["LORA_MANAGER_DATABASE_URL"] = self.database.url
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        env.update(extra_env or {})
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lora_manager.launcher", "run", "--port", str(self.port)],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kwargs)

    def ready(self) -> bool:
        return self.get("/readyz").status_code == 200

    def supervisord(self) -> psutil.Process:
        def find() -> psutil.Process | None:
            children = psutil.Process(self.process.pid).children()
            return next((p for p in children if "supervisord" in " ".join(p.cmdline())), None)

        return wait_until(find, 60, "supervisord")

    def program(self, needle: str) -> psutil.Process:
        """The live supervised process whose command line contains ``needle``."""
        for child in self.supervisord().children():
            try:
                if needle in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                    return child
            except psutil.NoSuchProcess:
                continue
        raise LookupError(needle)

    def login(self) -> requests.Session:
        session = requests.Session()
        session.get(self.url + "/accounts/login/", timeout=10)
        response = session.post(
            self.url + "/accounts/login/",
            data={"username": "admin", "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
            timeout=10,
        )
        assert response.status_code == 200 and "sessionid" in session.cookies, response.text[:500]
        session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
        return session

    def web_processes(self) -> list[psutil.Process]:
        """The live daphne processes (LORA_MANAGER_HTTP_PROCESSES of them once started)."""
        found = []
        for child in self.supervisord().children():
            try:
                if "daphne" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
        return found

    def _fetchone(self, query: str, params: tuple = ()) -> tuple | None:
        """One row from the stack's own database (what the app wrote, read as a person with psql would)."""
        if self.database is not None:
            return self.database.fetchone(query, params)
        with sqlite3.connect(self.data_dir / "lora_manager.sqlite3", timeout=10) as db:
            return db.execute(query, params).fetchone()

    def count(self, table: str) -> int:
        return self._fetchone(f"SELECT count(*) FROM {table}")[0]

    def status_of(self, table: str, pk: int) -> str:
        row = self._fetchone(f"SELECT status FROM {table} WHERE id = ?", (pk,))
        return row[0] if row else ""

    def descendants(self) -> list[int]:
        try:
            return [p.pid for p in psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


@contextmanager
def running(app: Stack) -> Iterator[Stack]:
    """The stack once ready; afterwards stopped, with its log kept beside its data and printed for the report."""
    try:
        wait_until(app.ready, 240, f"the stack to be ready; its log:\n{app.log[-3000:]}", interval=0.5)
        yield app
    finally:
        app.stop()
        if app.database is not None:
            app.database.drop()
        (app.data_dir / "stack.log").write_text(app.log)
        print(f"the stack's log: {app.data_dir / 'stack.log'}\n{app.log[-4000:]}")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class WebSocket:
    """A minimal RFC 6455 client over a plain socket (handshake, reading unmasked server frames)."""

    def __init__(self, port: int, path: str, cookies: dict[str, str]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
            f"Cookie: {cookie}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            head += chunk
        head, _, self.buffer = head.partition(b"\r\n\r\n")
        match = re.match(rb"HTTP/1\.1 (\d+)", head)
        self.status = int(match.group(1)) if match else 0

    def _read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def frame(self, timeout: float) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame; socket.timeout when none comes within ``timeout``."""
        self.sock.settimeout(timeout)
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self._read(2), "big")
        elif length == 127:
            length = int.from_bytes(self._read(8), "big")
        return first & 0x0F, self._read(length)

    def close(self) -> None:
        try:
            mask = os.urandom(4)
            payload = (1000).to_bytes(2, "big")
            self.sock.sendall(
                bytes([0x88, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            )
        except OSError:
            pass
        self.sock.close()
