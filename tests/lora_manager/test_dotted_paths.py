"""Every dotted path our code names in a string (RQ jobs, failure callbacks, the worker class, settings)
resolves: RQ imports them only when a job runs, so a moved module would otherwise fail at run time."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.utils.module_loading import import_string

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("adapters", "recommendations", "generation", "archive", "api", "lora_manager", "ops")
# Three parts or more: "app.module.name" (two parts are permissions and model labels: "adapters.view_adapter").
DOTTED = re.compile(r"^(" + "|".join(PACKAGES) + r")(\.[A-Za-z_]\w*){2,}$")


def named_paths() -> list[tuple[str, str]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and DOTTED.match(node.value):
                    found.append((f"{path.relative_to(ROOT)}:{node.lineno}", node.value))
    return found


def test_the_scan_finds_the_paths_rq_and_the_worker_use():
    paths = {value for _, value in named_paths()}
    expected = {
        "lora_manager.runs.tracked.on_job_failure",
        "lora_manager.runs.workers.Worker",
        "generation.tasks.generate",
    }
    assert expected <= paths


@pytest.mark.parametrize(("where", "dotted"), named_paths())
def test_a_dotted_path_in_the_code_resolves(where, dotted):
    import_string(dotted)  # raises ImportError naming what is missing
