"""The import graph (ops/import_graph.py): the repository has no cycles and no import against the app
layering; on small made-up trees the check finds what it must (so it can fail)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from ops import import_graph

ROOT = Path(__file__).resolve().parent.parent


def tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``{"pkg/mod.py": source}`` under ``root``, with the packages' ``__init__.py``."""
    for relative, source in files.items():
        path = root / relative
        for parent in path.relative_to(root).parents:
            if str(parent) != ".":
                (root / parent).mkdir(parents=True, exist_ok=True)
                (root / parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(source))
    return root


def test_the_repository_has_no_cycles_and_no_import_against_the_layering():
    graph = import_graph.build(ROOT)
    assert len(graph.modules) > 100 and "recommendations.ranking" in graph.modules
    lines, _ = import_graph.report(graph)
    assert import_graph.cycles(graph) == [], "\n".join(lines)
    assert import_graph.layering_violations(graph) == [], "\n".join(lines)


def test_the_command_exits_nonzero_on_a_violation_and_prints_the_map(tmp_path):
    tree(tmp_path, {"adapters/models.py": "from generation import jobs\n", "generation/jobs.py": "X = 1\n"})
    bad = subprocess.run(
        [sys.executable, "-m", "ops.import_graph", "--root", str(tmp_path), "--map"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert "layering: adapters.models:1 (adapters) imports generation.jobs" in bad.stdout
    assert "adapters: 2 modules, 1 lines; imports generation" in bad.stdout  # the map comes first
    clean = subprocess.run(
        [sys.executable, "-m", "ops.import_graph", "--root", str(ROOT)], cwd=ROOT, capture_output=True, check=False
    )
    assert clean.returncode == 0, clean.stdout.decode()


def test_a_function_level_import_cycle_is_found(tmp_path):
    tree(
        tmp_path,
        {
            "adapters/scan_runs.py": "from adapters import tasks\n",
            "adapters/tasks.py": """
                def job():
                    from adapters.scan_runs import execute
                    return execute
            """,
            "adapters/other.py": "import adapters.tasks\n",
        },
    )
    graph = import_graph.build(tmp_path)
    assert import_graph.cycles(graph) == [["adapters.scan_runs", "adapters.tasks"]]
    kinds = {(i.source, i.target): i.kind for i in graph.imports}
    assert kinds[("adapters.tasks", "adapters.scan_runs")] == "function"
    lines, problems = import_graph.report(graph)
    assert problems == 1 and "cycle: adapters.scan_runs <-> adapters.tasks" in lines[0]


def test_backwards_imports_are_found_whatever_their_form(tmp_path):
    tree(
        tmp_path,
        {
            "adapters/admin.py": "from archive.admin import export_selected\n",  # module level
            "adapters/bulk.py": "def f():\n    import recommendations.runs\n",  # function level
            "adapters/typed.py": (  # only for type hints: still a dependency
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from generation.models import Job\n"
            ),
            "adapters/queued.py": 'QUEUE_JOB = "api.tasks.job"\nimport_path = "generation.tasks"\n',  # strings: no
            "archive/admin.py": "from adapters import models\nexport_selected = 1\n",  # upward: fine
            "recommendations/runs.py": "from . import ranking\n",  # relative, same app: fine
            "recommendations/ranking.py": "from ..generation import learning\n",  # relative, backwards
            "generation/models.py": "",
            "adapters/models.py": "",
            "generation/learning.py": "",
            "api/tasks.py": "",
        },
    )
    graph = import_graph.build(tmp_path)
    found = {(i.source, i.target, i.kind) for i in import_graph.layering_violations(graph)}
    assert found == {
        ("adapters.admin", "archive.admin", "module"),
        ("adapters.bulk", "recommendations.runs", "function"),
        ("adapters.typed", "generation.models", "type-checking"),
        ("recommendations.ranking", "generation.learning", "module"),
    }
    assert import_graph.cycles(graph) == []


def test_lora_manager_imports_apps_only_from_its_wiring_and_apps_import_only_its_shared_pieces(tmp_path):
    tree(
        tmp_path,
        {
            "lora_manager/runs.py": "def f():\n    from adapters import models\n",  # shared: no app
            "lora_manager/routing.py": "from generation import routing\n",  # entry: any app
            "lora_manager/dashboard/figures.py": "from archive import models\n",  # overview package
            "adapters/models.py": "from lora_manager import runs\n",  # shared piece: fine
            "generation/routing.py": "from lora_manager.dashboard import figures\n",  # overview: too high
            "api/status.py": "from lora_manager.dashboard import figures\n",  # api is above overview
            "archive/models.py": "",
            "ops/tool.py": "from lora_manager import routing\nfrom api import status\n",  # tooling: anything
        },
    )
    graph = import_graph.build(tmp_path)
    found = {(i.source, i.target) for i in import_graph.layering_violations(graph)}
    assert found == {("lora_manager.runs", "adapters.models"), ("generation.routing", "lora_manager.dashboard.figures")}
    assert import_graph.layer("lora_manager.dashboard.figures")[1] == "lora_manager overview"
    assert import_graph.cycles(graph) == [["adapters.models", "lora_manager.runs"]]


def test_the_map_lists_packages_modules_lines_and_what_they_import(tmp_path):
    tree(
        tmp_path,
        {
            "adapters/models.py": "X = 1\nY = 2\n",
            "recommendations/ranking.py": "from adapters import models\n\ndef f():\n    import generation.learning\n",
            "generation/learning.py": "",
        },
    )
    text = "\n".join(import_graph.module_map(import_graph.build(tmp_path)))
    assert "adapters: 2 modules, 2 lines; imports nothing" in text
    assert "recommendations: 2 modules, 4 lines; imports adapters, generation" in text
    assert "recommendations.ranking" in text and "adapters generation(f)" in text  # (f): only in functions
