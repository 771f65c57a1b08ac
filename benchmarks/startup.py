"""Command start-up: the wall time of ``manage.py help`` and ``manage.py scan_library --help``, whole processes.

Both do no work beyond starting Django (settings, every installed app, its models and ready()) and
printing usage, so they are what any command pays before it starts (issue 17: <= 0.4 s on a quiet
2-core machine). Each runs once to warm the bytecode cache (allowed to write it even where
PYTHONDONTWRITEBYTECODE is set: an installation has its .pyc files), then RUNS times; the median counts,
and the CPU seconds beside it say how much of the wall time was waiting for a busy machine.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time

from django.conf import settings

RUNS = 7
TARGET_S = 0.4
COMMANDS = (("help",), ("scan_library", "--help"))


def _timed(argv: tuple[str, ...], warm_up: bool = False) -> tuple[float, float]:
    """(wall s, cpu s) of one ``python manage.py ARGV`` run."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "lora_manager.settings"}
    if warm_up:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(runs: int = RUNS) -> list[dict]:
    results = []
    for argv in COMMANDS:
        _timed(argv, warm_up=True)
        walls, cpus = zip(*(_timed(argv) for _ in range(runs)), strict=True)
        results.append(
            {
                "command": "manage.py " + " ".join(argv),
                "runs": runs,
                "wall_s_median": round(statistics.median(walls), 3),
                "wall_s_min": round(min(walls), 3),
                "cpu_s_median": round(statistics.median(cpus), 3),
                "target_wall_s": TARGET_S,
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
    return results
