"""The whole `make run` stack under faults, with real processes: the launcher, supervisord, daphne, the RQ
workers, a Redis server this module starts (and stops), the SD.Next STAND-IN. The tests run in file order
on one stack: a killed worker, a Redis outage, an idle websocket, then Ctrl-C."""

from __future__ import annotations

import signal
import socket
import time

from tests.faults.stack import Stack, WebSocket, alive
from tests.faults.waiting import wait_until

JOB = {"prompt": "a red fox in the snow", "steps": 4, "width": 512, "height": 512}
JOBS = "generation_generationjob"
RUNS = "archive_archiverun"


def submit(stack: Stack, session) -> int:
    response = session.post(stack.url + "/api/v1/generation/jobs", json=JOB, timeout=15)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_killed_worker_is_restarted_and_takes_its_children_with_it(stack, session, standin):
    standin.set_fault("hang", times=1)  # a generation in flight: its work-horse waits on SD.Next
    hung = submit(stack, session)
    worker = stack.program("run_worker generation-")
    children = wait_until(lambda: len(worker.children()) >= 2 and worker.children(), 60, "a work-horse and scheduler")
    assert wait_until(lambda: stack.status_of(JOBS, hung) == "running", 30, "the job to run")

    worker.kill()  # SIGKILL

    assert stack.get("/healthz").status_code == 200  # the web keeps answering
    for child in children:  # the scheduler and the work-horse die with their worker: no orphans
        wait_until(lambda child=child: not alive(child.pid), 10, f"child {child.pid} of the killed worker to die")
    replacement = wait_until(lambda: stack.program("run_worker generation-"), 30, "a restarted worker")
    assert replacement.pid != worker.pid
    assert "exited: worker-generation-default (terminated by SIGKILL; not expected)" in stack.log
    wait_until(stack.ready, 60, "/readyz to answer 200")
    standin.set_fault(None)


def test_a_redis_outage_answers_503_commits_nothing_and_recovers_without_restart(stack, session, redis_server, standin):
    jobs, runs = stack.count(JOBS), stack.count(RUNS)
    web = stack.program("daphne").pid
    held = WebSocket(stack.port, "/ws/activity/", session.cookies.get_dict())  # open when Redis goes
    assert held.status == 101 and held.frame(timeout=10)[0] == 1
    redis_server.stop()

    opcode, payload = held.frame(timeout=20)
    while opcode == 1:  # an update sent before the read failed
        opcode, payload = held.frame(timeout=20)
    assert (opcode, payload[:2]) == (8, (1011).to_bytes(2, "big"))  # a code the browser reconnects after
    held.close()
    seen = len(stack.lines)
    tracebacks = wait_until(
        lambda: stack.log.count("Exception inside application"), 10, "daphne to log the socket's end"
    )

    ready = stack.get("/readyz")
    assert ready.status_code == 503 and "redis" in ready.json()["failing"]
    assert stack.get("/healthz").status_code == 200
    response = session.post(stack.url + "/api/v1/generation/jobs", json=JOB, timeout=15)
    assert response.status_code == 503
    assert "Redis" in response.json()["detail"] and "Nothing was queued" in response.json()["detail"]
    page = session.post(stack.url + "/archive/backups/", timeout=15)
    assert page.status_code == 503 and "Service unavailable" in page.text and "<html" in page.text
    fragment = session.post(stack.url + "/archive/backups/", headers={"HX-Request": "true"}, timeout=15)
    assert fragment.status_code == 503 and fragment.headers["HX-Retarget"] == "#service-alert"
    assert "<html" not in fragment.text and "Redis" in fragment.text
    socket_while_down = WebSocket(stack.port, "/ws/activity/", session.cookies.get_dict())
    assert socket_while_down.status == 403  # refused cleanly, not a 500: the browser retries with backoff
    socket_while_down.close()
    wait_until(lambda: "websocket /ws/activity/ refused" in "".join(stack.lines[seen:]), 10, "the refusal's warning")
    status_page = session.get(stack.url + "/status/", timeout=15)
    assert status_page.status_code == 200 and "Redis unreachable" in status_page.text
    assert (stack.count(JOBS), stack.count(RUNS)) == (jobs, runs)  # no phantom "queued" rows
    # The refused handshake ended with a warning, not daphne's "Exception inside application" traceback.
    assert stack.log.count("Exception inside application") == tracebacks

    redis_server.start()  # the same port, empty (no persistence)

    wait_until(stack.ready, 60, "/readyz 200 again: Redis back, workers registered again")
    job = wait_until(lambda: submit(stack, session), 30, "a generation to be accepted again")
    wait_until(lambda: stack.status_of(JOBS, job) == "succeeded", 60, "the worker to run it")

    def accepted() -> WebSocket | None:
        ws = WebSocket(stack.port, "/ws/activity/", session.cookies.get_dict())
        if ws.status == 101:
            return ws
        ws.close()  # the first handshake may meet a pooled connection Redis dropped: retried, as browsers do
        return None

    live = wait_until(accepted, 15, "a websocket accepted again")  # the web's channel layer reconnected by itself
    opcode, payload = live.frame(timeout=10)
    assert opcode == 1 and b"activity" in payload
    live.close()
    # The web process recovered without a restart; a worker may have exited on a Redis error outside RQ's
    # retry loop: the supervisor then restarted it (with backoff while Redis was down).
    assert stack.program("daphne").pid == web


def test_an_idle_websocket_stays_open(stack, session):
    seen = len(stack.lines)
    ws = WebSocket(stack.port, "/ws/activity/", session.cookies.get_dict())
    assert ws.status == 101
    assert ws.frame(timeout=10)[0] == 1  # the initial state
    deadline = time.monotonic() + 30
    while (left := deadline - time.monotonic()) > 0:  # 30 s of silence: only text frames may come, no close
        try:
            opcode, payload = ws.frame(timeout=left)
        except TimeoutError:
            break
        assert opcode != 8, f"the server closed an idle websocket: {payload!r}"
    ws.close()
    during = "".join(stack.lines[seen:])
    assert "TimeoutError" not in during and "Traceback" not in during and " ERROR " not in during, during


def test_ctrl_c_stops_everything_within_10_s_even_with_a_hung_sdnext_call(stack, session, standin):
    standin.set_fault("hang", times=1)
    hung = submit(stack, session)
    wait_until(lambda: stack.status_of(JOBS, hung) == "running", 60, "the job to hang in SD.Next")
    pids = stack.descendants()
    assert len(pids) >= 7  # supervisord, daphne, two workers, their schedulers, a work-horse

    stack.process.send_signal(signal.SIGINT)

    wait_until(lambda: stack.process.poll() is not None and not any(alive(pid) for pid in pids), 10, "all to stop")
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", stack.port)) != 0
    standin.set_fault(None)
