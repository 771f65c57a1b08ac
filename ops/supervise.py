"""`make run`'s processes under supervisord (the `supervisor` package): daphne and the RQ workers.

HTTP is served by LORA_MANAGER_HTTP_PROCESSES daphne processes (default: one per core). Django's sync
views run on one thread per daphne process, so one process uses one core however many clients wait.
supervisord binds the listening socket itself (an ``fcgi-program``, the layout daphne's documentation
gives) and hands it to every daphne as fd 0 (``daphne --fd 0``): the kernel passes each new connection
to whichever process accepts first, and the socket outlives any one of them, so a killed web process
costs no refused connections while it restarts. Websockets work across them because every daphne
uses the same Redis channel layer.

What supervisord gives us, so the launcher need not grow its own process manager:
- a process that exits (kill -9, a crash, Redis gone) is restarted; one that keeps dying at start-up
  is retried with a growing delay (1 s, 2 s, 3 s ...), and each exit and restart is logged;
- every program runs in its own process group and is stopped as a group, so a worker's RQ scheduler
  goes with it; its work-horse dies with it too (lora_manager/runs/workers.py: PR_SET_PDEATHSIG);
- Ctrl-C stops the web processes first (their own group: supervisord needs that to hand them the
  socket; daphne exits within a second), then the workers side by side (one group): SIGTERM, then
  SIGKILL of the whole process group after STOP_WAIT_SECONDS, even when a worker waits on a hung
  SD.Next call.

``python -m ops.supervise --port 8000`` runs the same stack without the launcher (Redis and the
database must then be configured and migrated already).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# SIGTERM, then SIGKILL of the group. Ctrl-C's budget is 10 s: the web (2 s) and the workers are stopped one
# after the other, and supervisord notices each stop on its next one-second tick. With 5 s here a loaded
# machine needed 9.2 to 10.5 s with a hung SD.Next call in flight (seen on SQLite and PostgreSQL).
STOP_WAIT_SECONDS = 3
# daphne drops its pending requests at once on SIGTERM, then takes 2-3 s to tear down; the web group is
# stopped before the workers' (supervisord stops groups one after the other), so bound it.
WEB_STOP_WAIT_SECONDS = 2
START_SECONDS = 5  # a process must stay up this long to count as started (else: retried with backoff)
START_RETRIES = 1000  # backoff grows by a second per retry: about two weeks of outage before giving up


def http_processes(env: dict) -> int:
    """LORA_MANAGER_HTTP_PROCESSES, else the number of cores this process may run on."""
    configured = env.get("LORA_MANAGER_HTTP_PROCESSES", "").strip()
    if configured:
        count = int(configured)
        if count < 1:
            raise SystemExit(f"LORA_MANAGER_HTTP_PROCESSES must be at least 1, not {count}")
        return count
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


WEB_COMMAND = [sys.executable, "-m", "daphne", "--fd", "0", "lora_manager.asgi:application"]


def programs(env: dict) -> dict[str, list[str]]:
    """Name → command of the workers: one for the default and embeddings queues, one per SD.Next backend
    (so a long scan never holds up a generation, and backends run side by side). The web is separate
    (``web_program``): supervisord gives it the listening socket."""
    from lora_manager.env import generation_queues

    manage = [sys.executable, str(BASE_DIR / "manage.py")]
    commands = {"worker": [*manage, "run_worker", "--no-generation"]}
    for queue in generation_queues(env):
        commands[f"worker-{queue}"] = [*manage, "run_worker", queue]
    return commands


def _program_options(command: list[str], stop_wait: int = STOP_WAIT_SECONDS) -> list[str]:
    return [
        "command=" + " ".join(shlex.quote(part).replace("%", "%%") for part in command),
        f"directory={BASE_DIR}",
        "autostart=true",
        "autorestart=true",
        f"startsecs={START_SECONDS}",
        f"startretries={START_RETRIES}",
        "stopsignal=TERM",
        f"stopwaitsecs={stop_wait}",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        "stdout_logfile=/dev/stdout",
        "stdout_logfile_maxbytes=0",
    ]


def web_program(port: int, host: str, processes: int) -> list[str]:
    """The ``fcgi-program`` section of the daphne processes: web-0, web-1, … on one socket supervisord binds.
    Stopped before the workers (higher priority number), so Ctrl-C closes the port first."""
    address = f"[{host}]" if ":" in host else host
    return [
        "[fcgi-program:web]",
        f"socket=tcp://{address}:{port}",
        "socket_backlog=1024",
        f"numprocs={processes}",
        "process_name=web-%(process_num)d",
        "priority=1000",
        *_program_options(WEB_COMMAND, WEB_STOP_WAIT_SECONDS),
        "",
    ]


def config(commands: dict[str, list[str]], run_dir: Path, web: list[str] | None = None) -> str:
    """supervisord.conf: every program autorestarts, is stopped as a process group, logs to our stdout."""
    lines = [
        "[supervisord]",
        "nodaemon=true",
        "logfile=/dev/stdout",
        "logfile_maxbytes=0",
        "loglevel=info",
        f"pidfile={run_dir / 'supervisord.pid'}",
        f"directory={BASE_DIR}",
        "",
        "[group:lora-manager]",
        f"programs={','.join(commands)}",
        "",
    ]
    for name, command in commands.items():
        lines += [f"[program:{name}]", *_program_options(command), ""]
    return "\n".join(lines + (web or []))


def run(port: int, env: dict, run_dir: Path, host: str = "127.0.0.1") -> int:
    """Run supervisord in the foreground until SIGINT/SIGTERM; returns its exit code."""
    run_dir.mkdir(parents=True, exist_ok=True)
    conf = run_dir / "supervisord.conf"
    conf.write_text(config(programs(env), run_dir, web_program(port, host, http_processes(env))))
    supervisord = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)], env=env)

    def forward(signum: int, _frame: object) -> None:
        if supervisord.poll() is None:
            supervisord.send_signal(signal.SIGTERM)  # supervisord stops the whole group, then exits

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return supervisord.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.supervise")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "lora_manager.settings")
    data_dir = Path(env.get("LORA_MANAGER_DATA_DIR", BASE_DIR / "data")).resolve()
    return run(args.port, env, data_dir / "run", args.host)


if __name__ == "__main__":
    sys.exit(main())
