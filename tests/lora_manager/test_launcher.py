"""`launcher manage`: a manage.py command on the same database and Redis as a running `make run`."""

from __future__ import annotations

import os
import subprocess
import sys

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
