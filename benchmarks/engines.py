"""Run a benchmark again on SQLite when the configured database is PostgreSQL, so ``make bench`` with
``DATABASE_URL`` / ``LORA_MANAGER_DATABASE_URL`` pointing at PostgreSQL reports both engines.

The second run is ``python -m benchmarks <name>`` in a child process with the database URL removed from
its environment (it then uses the SQLite file in the data directory); its JSON lines come back as rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from django.db import connection

NESTED = "LORA_MANAGER_BENCH_ENGINE_RUN"  # set in the child: it must not start another one
URL_NAMES = ("LORA_MANAGER_DATABASE_URL", "DATABASE_URL")


def on_sqlite_too(name: str, count: int, rounds: int) -> list[dict]:
    """Rows of benchmark ``name`` run on SQLite with the same size, when this run is on PostgreSQL (else none)."""
    if connection.vendor != "postgresql" or os.environ.get(NESTED):
        return []
    env = {key: value for key, value in os.environ.items() if key not in URL_NAMES}
    env.update({NESTED: "1", "LORA_MANAGER_BENCH_ADAPTERS": str(count), "LORA_MANAGER_BENCH_ROUNDS": str(rounds)})
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", name], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return [{"case": f"{name} on sqlite", "error": done.stderr.strip().splitlines()[-1:] or ["failed"]}]
    rows = []
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            row.pop("bench", None)
            rows.append(row)
    return rows
