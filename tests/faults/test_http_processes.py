"""HTTP from several daphne processes on the one socket supervisord binds (ops/supervise.py), with real
processes: the launcher, supervisord, two daphne processes, the RQ workers, a Redis server this module
starts, the SD.Next STAND-IN. A worker's progress update reaches the websockets of every HTTP process
(through the Redis channel layer), and a killed HTTP process is restarted while the other one serves."""

from __future__ import annotations

import time

import pytest
import requests

from tests.faults.stack import Stack, WebSocket, alive
from tests.faults.waiting import wait_until

PROCESSES = 2


@pytest.fixture(scope="module")
def standin_options() -> dict:
    return {"step_delay": 0.1}


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    return {"LORA_MANAGER_HTTP_PROCESSES": str(PROCESSES)}


@pytest.fixture(scope="module", autouse=True)
def every_http_process_started(stack: Stack) -> None:
    """The stack is ready once one daphne answers; these tests need all of them."""
    wait_until(lambda: len(stack.web_processes()) == PROCESSES, 60, f"{PROCESSES} daphne processes")


def serving_pid(stack: Stack, ws: WebSocket) -> int | None:
    """The daphne process holding the server side of this websocket's connection."""
    client_port = ws.sock.getsockname()[1]
    for process in stack.web_processes():
        for conn in process.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == stack.port and conn.raddr and conn.raddr.port == client_port:
                return process.pid
    return None


def test_a_workers_progress_update_reaches_the_sockets_of_every_http_process(stack, session):
    cookies = session.cookies.get_dict()
    sockets: dict[int, list[WebSocket]] = {}
    opened: list[WebSocket] = []
    try:
        while len(sockets) < PROCESSES and len(opened) < 60:  # until both processes hold some
            ws = WebSocket(stack.port, "/ws/generation/jobs/", cookies)
            assert ws.status == 101
            opened.append(ws)
            assert ws.frame(timeout=15)[0] == 1  # the initial queue, rendered by that process
            pid = wait_until(lambda ws=ws: serving_pid(stack, ws), 10, "the socket's daphne process")
            sockets.setdefault(pid, []).append(ws)
        assert len(sockets) == PROCESSES, f"all {len(opened)} sockets went to one process"

        job = {"prompt": "progress to every process", "steps": 30, "width": 64, "height": 64}
        response = session.post(stack.url + "/api/v1/generation/jobs", json=job, timeout=15)
        assert response.status_code == 201, response.text
        marker = f'id="job-{response.json()["id"]}-progress"'.encode()

        for pid, held in sockets.items():
            for ws in held:
                deadline = time.monotonic() + 60
                while True:  # a progress fragment of this job: published by the worker, not by a page
                    opcode, payload = ws.frame(timeout=max(0.1, deadline - time.monotonic()))
                    if marker in payload and b'data-status="running"' in payload:
                        break
                    assert time.monotonic() < deadline, f"no progress on a socket of process {pid}"
                assert opcode == 1
    finally:
        for ws in opened:
            ws.close()


def test_a_killed_http_process_is_restarted_while_the_other_serves(stack, session):
    victim, survivor = stack.web_processes()[:2]

    victim.kill()  # SIGKILL: the connections it held are cut (a browser's next request opens a new one)
    wait_until(lambda: not alive(victim.pid), 10, "the killed daphne to be gone")

    cookies = session.cookies.get_dict()
    for _ in range(20):  # new connections: the socket supervisord holds stays open, the other process answers
        assert requests.get(stack.url + "/library/", cookies=cookies, timeout=15).status_code == 200
    wait_until(lambda: {p.pid for p in stack.web_processes()} - {victim.pid, survivor.pid}, 60, "a restarted daphne")
    assert survivor.is_running() and survivor.pid in {p.pid for p in stack.web_processes()}
    assert len(stack.web_processes()) == PROCESSES
    assert "(terminated by SIGKILL; not expected)" in stack.log and "exited: web-" in stack.log
    wait_until(stack.ready, 60, "/readyz to answer 200")
