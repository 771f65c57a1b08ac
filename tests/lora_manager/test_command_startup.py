"""manage.py commands import only what they need (issue 17): start-up loads no machine learning stack, no
numpy, no daphne/twisted and no API framework; a command imports its own machinery when it runs.

Each case runs commands in a fresh interpreter (a test process has imported everything long ago) and
reads which modules it loaded. The start-up time itself is measured by ``make bench`` (benchmarks/startup.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import get_commands

from tests.standins.held_worker import database_url

BASE_DIR = settings.BASE_DIR
OUR_APPS = {"adapters", "api", "archive", "generation", "lora_manager", "recommendations"}

# Never needed to start a command: the embedding stack, numpy, daphne (and the twisted reactor it installs)
# and django-ninja with pydantic (the JSON API's, loaded with the URLconf).
HEAVY = ("torch", "transformers", "sentence_transformers", "faiss", "numpy", "daphne", "twisted", "ninja", "pydantic")
# Nor does starting Django: Redis clients load when a command talks to Redis (django_rq is no installed app).
STARTUP_HEAVY = (*HEAVY, "redis", "rq", "django_rq")
# What a serving process never needs either: the URLconf and the admin may load ninja and numpy, not these.
ML_AND_DAPHNE = ("torch", "transformers", "sentence_transformers", "faiss", "daphne", "twisted")

# Runs each argv as `manage.py ARGV...` in turn and prints, per command, the modules it loaded.
WRAPPER = """
import contextlib, io, json, sys
from django.core.management import execute_from_command_line

seen, report = set(sys.modules), []
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            execute_from_command_line(["manage.py", *argv])
        except SystemExit as exc:
            if exc.code:
                raise
    report.append({"argv": argv, "loaded": sorted(set(sys.modules) - seen)})
    seen = set(sys.modules)
print(json.dumps(report))
"""


def loaded_by(*commands: list[str], **env_vars: str) -> list[dict]:
    """[{"argv": [...], "loaded": [modules first imported by that command]}], in a fresh interpreter."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "lora_manager.settings", **env_vars}
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, json.dumps(list(commands))],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def heavy_in(report: list[dict], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """{command: the forbidden packages it loaded}, for the commands that loaded any."""
    packages = [(" ".join(step["argv"]), {name.partition(".")[0] for name in step["loaded"]}) for step in report]
    found = {command: [name for name in forbidden if name in loaded] for command, loaded in packages}
    return {command: names for command, names in found.items() if names}


@pytest.mark.parametrize(
    "argv",
    [["help"], ["scan_library", "--help"], ["embed_library", "--help"], ["fetch_civitai", "--help"]],
    ids=" ".join,
)
def test_a_command_starts_without_heavy_imports(argv):
    assert heavy_in(loaded_by(argv), STARTUP_HEAVY) == {}


def test_no_command_of_ours_imports_heavy_modules_for_its_help():
    ours = sorted(name for name, app in get_commands().items() if app in OUR_APPS)
    assert "scan_library" in ours and "run_worker" in ours
    report = loaded_by(*[[name, "--help"] for name in ours])
    assert [step["argv"][0] for step in report] == ours
    assert heavy_in(report, HEAVY) == {}


def test_the_urlconf_and_admin_never_load_the_embedding_stack_or_daphne():
    """`check` loads the URLconf, every view and every ModelAdmin: what a web process imports before a request."""
    report = loaded_by(["check"])
    assert "lora_manager.urls" in report[0]["loaded"]  # else this test would prove nothing
    assert heavy_in(report, ML_AND_DAPHNE) == {}


@pytest.mark.django_db(transaction=True)
def test_a_scan_imports_neither_the_web_app_nor_the_embedding_stack(tmp_path):
    """A whole `scan_library` run (cron's rescan) skips the system checks that would load the URLconf."""
    (tmp_path / "library").mkdir()
    report = loaded_by(
        ["scan_library", "--no-hash", str(tmp_path / "library")],
        LORA_MANAGER_DATABASE_URL=database_url(),
        LORA_MANAGER_REDIS_URL=settings.REDIS_URL,
        LORA_MANAGER_DATA_DIR=str(settings.DATA_DIR),
    )
    assert "adapters.scanning" in report[0]["loaded"]  # it scanned
    assert "lora_manager.urls" not in report[0]["loaded"]
    assert heavy_in(report, (*ML_AND_DAPHNE, "ninja", "pydantic")) == {}


def test_import_library_offers_the_conflict_rules_planning_knows():
    from archive.management.commands import import_library
    from archive.planning import ON_CONFLICT

    assert import_library.ON_CONFLICT == ON_CONFLICT


def test_the_admin_checks_see_every_model_admin_though_discovery_is_lazy():
    from django.contrib import admin

    from adapters.models import Adapter
    from lora_manager.lazy_admin import check_discovered_admin

    assert check_discovered_admin() == []
    assert admin.site.is_registered(Adapter)


def test_the_rq_dashboard_works_and_the_admin_index_links_it(client, admin_user):
    """django_rq is used without being an installed app: its templates, template tags and stylesheet still serve."""
    from django.contrib.staticfiles import finders

    client.force_login(admin_user)
    index = client.get("/admin/").content.decode()
    assert 'href="/admin/rq/"' in index
    assert client.get("/admin/rq/").status_code == 200
    assert client.get("/admin/rq/workers/0/").status_code == 200
    queue = client.get("/admin/rq/queues/0/")  # uses both of its template tag libraries and its stylesheet
    assert queue.status_code == 200 and b"django_rq/css/admin.css" in queue.content
    assert finders.find("django_rq/css/admin.css")
