"""`launcher manage`: a manage.py command on the same database and Redis as a running `make run`."""

from __future__ import annotations

import os
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


def test_a_failing_start_up_step_stops_with_its_own_message_and_no_launcher_traceback(tmp_path):
    """`make run` refused by another installation on the same Redis printed the clear CommandError, then the
    launcher's CalledProcessError traceback under it (seen by hand)."""
    env = {**os.environ, "LORA_MANAGER_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "lora_manager.settings"}
    with pytest.raises(SystemExit) as stopped:
        launcher.manage("no_such_command", env=env)
    assert "`manage.py no_such_command` failed (exit status 1)" in str(stopped.value)
