"""A real ``manage.py run_worker`` for fault tests (a forking RQ worker with its scheduler and janitor),
with two test hooks and nothing else changed:

- after forking a work-horse, the worker writes the horse's pid to ``<LORA_MANAGER_TEST_HOLD_DIR>/<job id>.pid``,
  so a test can ``kill -9`` exactly that process;
- while ``<LORA_MANAGER_TEST_HOLD_DIR>/hold`` exists, a tracked run's progress report (scan, embedding,
  archive) waits after writing its row, so the test kills the horse mid-run, not after it finished.

Run as ``python -m tests.standins.held_worker [run_worker arguments]``; ``HeldWorker`` starts and stops it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The test database as a URL, for subprocesses that must share it (it must be file-backed)."""
    from django.db import connection

    config = connection.settings_dict
    if config["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{config['NAME']}"
    auth = quote(config["USER"] or "")
    if config.get("PASSWORD"):
        auth += ":" + quote(config["PASSWORD"])
    return f"postgres://{auth}@{config['HOST'] or 'localhost'}:{config['PORT'] or 5432}/{config['NAME']}"


def _install_hooks(hold_dir: Path) -> None:
    from lora_manager import realtime
    from lora_manager.runs import workers

    report = realtime.RunReporter.__call__

    def held(self, phase: str, done: int, total: int) -> None:
        report(self, phase, done, total)
        while (hold_dir / "hold").exists():
            time.sleep(0.05)

    fork = workers.Worker.fork_work_horse

    def fork_and_tell(self, job, queue) -> None:
        fork(self, job, queue)
        partial = hold_dir / f"{job.id}.pid.partial"
        partial.write_text(str(self.horse_pid))
        partial.rename(hold_dir / f"{job.id}.pid")

    realtime.RunReporter.__call__ = held
    workers.Worker.fork_work_horse = fork_and_tell


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lora_manager.settings")
    import django

    django.setup()
    _install_hooks(Path(os.environ["LORA_MANAGER_TEST_HOLD_DIR"]))
    from django.core.management import call_command

    call_command("run_worker", *argv)


def wait_for(what: str, check: Callable[[], object], timeout: float = 90, worker: HeldWorker | None = None):
    """Poll ``check`` until it returns something truthy; fail with ``what`` (and the worker's log) at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            log = f"\nworker log:\n{worker.output()[-4000:]}" if worker else ""
            raise AssertionError(f"gave up waiting for {what} after {timeout} s{log}")
        time.sleep(0.1)


class HeldWorker:
    """One worker process in a process group of its own (with its scheduler); its horses are killed by pid."""

    def __init__(self, hold_dir: Path, env: dict[str, str], queues: list[str], log: Path):
        self.hold_dir, self.log = hold_dir, log
        hold_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.standins.held_worker", *queues],
            cwd=BASE_DIR,
            env={**env, "LORA_MANAGER_TEST_HOLD_DIR": str(hold_dir)},
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def hold(self) -> None:
        (self.hold_dir / "hold").touch()

    def release(self) -> None:
        (self.hold_dir / "hold").unlink(missing_ok=True)

    def horse_pid(self, job_id: str, timeout: float = 60) -> int:
        path = self.hold_dir / f"{job_id}.pid"
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no work-horse started for {job_id}; worker log:\n{self.output()}")
            time.sleep(0.05)
        return int(path.read_text())

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def _kill_horses(self, sig: int) -> None:
        """RQ puts each work-horse in a process group of its own: a group kill misses them."""
        for path in self.hold_dir.glob("*.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(path.read_text()), sig)

    def kill(self) -> None:
        """SIGKILL the worker, its scheduler and its work-horses, as a crashed machine would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self._kill_horses(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        self.release()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever is left of the group
        self._kill_horses(signal.SIGKILL)
        self.process.wait(10)


if __name__ == "__main__":
    main(sys.argv[1:])
