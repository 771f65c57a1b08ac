"""The RQ worker class ``run_worker`` starts: its children die with it.

RQ forks a work-horse per job (in its own process group) and a scheduler process. When the worker is
killed outright (kill -9, the OOM killer) they used to live on as orphans: a horse finished a job after
the app had stopped. Every direct child of the worker asks the kernel for SIGKILL when the worker dies
(Linux ``PR_SET_PDEATHSIG``); processes the horse forks itself are left alone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from rq.worker import Worker

PR_SET_PDEATHSIG = 1
_hooked_in: int | None = None


def _die_with(parent_pid: int) -> None:
    if os.getppid() != parent_pid:
        return  # a grandchild (forked by the horse): not ours to tie
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the worker died between fork and prctl
        os._exit(1)


def tie_children_to_this_process() -> None:
    """From now on, each process this one forks is killed when this one dies (once per process)."""
    global _hooked_in
    if not sys.platform.startswith("linux") or _hooked_in == os.getpid():
        return
    _hooked_in = os.getpid()
    parent = os.getpid()
    os.register_at_fork(after_in_child=lambda: _die_with(parent))


class SupervisedWorker(Worker):
    """RQ's forking worker whose work-horse and scheduler never outlive it, and who registers again when
    Redis comes back without its data (restarted, flushed): RQ retries the connection by itself, but
    its registration would be gone, so /readyz and the status page would see no worker."""

    def work(self, *args, **kwargs):
        tie_children_to_this_process()
        return super().work(*args, **kwargs)

    def heartbeat(self, timeout: int | None = None, pipeline=None):
        if pipeline is None and not self.connection.exists(self.key):
            self.log.warning(
                "Worker %s: its registration is gone from Redis (restarted?): registering again", self.name
            )
            self.register_birth()
        return super().heartbeat(timeout, pipeline)
