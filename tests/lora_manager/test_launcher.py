"""`launcher manage`: a manage.py command on the same database and Redis as a running `make run`."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from lora_manager import launcher


def test_manage_mode_uses_the_running_apps_data_dir_and_private_redis(tmp_path):
    data_dir = tmp_path / "data"
    running = launcher.RedisProcess(data_dir, persist=True)  # what `make run` starts when no Redis is configured
    try:
        assert (data_dir / "redis" / "url").read_text().strip() == running.url
        assert launcher.running_app_redis(data_dir) == running.url
        env = {k: v for k, v in os.environ.items() if k not in ("LORA_MANAGER_REDIS_URL", "REDIS_URL", "DATABASE_URL")}
        env.pop("LORA_MANAGER_DATABASE_URL", None)
        env["LORA_MANAGER_DATA_DIR"] = str(data_dir)
        show = "from django.conf import settings; print(settings.REDIS_URL, settings.DATABASES['default']['NAME'])"
        done = subprocess.run(
            [sys.executable, "-m", "lora_manager.launcher", "manage", "shell", "-c", show],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        redis_url, database = done.stdout.strip().splitlines()[-1].split()
        assert redis_url == running.url and database.startswith(str(data_dir))
        assert f"Using the running app's Redis at {running.url}" in done.stderr
    finally:
        running.stop()
    assert not (data_dir / "redis" / "url").exists() and launcher.running_app_redis(data_dir) is None


def test_the_demo_loras_have_weights_of_their_own(tmp_path):
    """Three sample LoRAs with three sets of tensors (the bytes after the safetensors header, which AutoV3
    hashes): none is a duplicate of another."""
    env: dict = {}
    folder = launcher.demo_lora_dir(env, tmp_path)
    assert env["LORA_MANAGER_LIBRARY_DIRS"] == str(folder)
    tensors = set()
    for path in sorted(folder.glob("*.safetensors")):
        raw = path.read_bytes()
        tensors.add(raw[8 + int.from_bytes(raw[:8], "little") :])
    assert len(tensors) == 3


def test_manage_py_with_the_running_apps_data_dir_uses_its_private_redis(tmp_path):
    """``.venv/bin/python manage.py scan_library`` with make run's LORA_MANAGER_DATA_DIR and no Redis configured
    used redis://127.0.0.1:6379/0: its start-up reconcile failed the worker's running embedding run ("the
    worker stopped") and its re-embedding request went to a queue no worker reads."""
    data_dir = tmp_path / "data"
    running = launcher.RedisProcess(data_dir, persist=True)
    env = {k: v for k, v in os.environ.items() if k not in ("LORA_MANAGER_REDIS_URL", "REDIS_URL", "DATABASE_URL")}
    env.pop("LORA_MANAGER_DATABASE_URL", None)
    env["LORA_MANAGER_DATA_DIR"] = str(data_dir)
    show = "from django.conf import settings; print(settings.REDIS_URL, settings.RQ_QUEUES['default']['URL'])"

    def redis_urls() -> list[str]:
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", show],
            cwd=launcher.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1].split()

    try:
        assert redis_urls() == [running.url, running.url]
        env["LORA_MANAGER_REDIS_URL"] = "redis://127.0.0.1:6390/2"  # what is configured still wins
        assert redis_urls() == ["redis://127.0.0.1:6390/2"] * 2
        del env["LORA_MANAGER_REDIS_URL"]
    finally:
        running.stop()
    assert redis_urls() == ["redis://127.0.0.1:6379/0"] * 2  # make run stopped: the usual default


def test_readme_command_lines_name_the_virtualenvs_python():
    """Issue 15, item 10: a bare ``python manage.py ...`` from the README runs outside ``.venv`` (or fails), and
    with another environment works on another catalog. Every command line in it names ``.venv/bin/python``."""
    readme = (launcher.BASE_DIR / "README.md").read_text()
    bare = [
        line.strip()
        for line in readme.splitlines()
        if re.search(r"(?<![/\w])python3? (manage\.py|-m )", line) and "PYTHON" not in line
    ]
    assert not bare, "README commands without .venv/bin/python:\n" + "\n".join(bare)


def test_a_failing_start_up_step_stops_with_its_own_message_and_no_launcher_traceback(tmp_path):
    """`make run` refused by another installation on the same Redis printed the clear CommandError, then the
    launcher's CalledProcessError traceback under it (seen by hand)."""
    env = {**os.environ, "LORA_MANAGER_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "lora_manager.settings"}
    with pytest.raises(SystemExit) as stopped:
        launcher.manage("no_such_command", env=env)
    assert "`manage.py no_such_command` failed (exit status 1)" in str(stopped.value)
