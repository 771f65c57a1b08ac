"""The archive settings come from LORA_MANAGER_* variables through the strict parsers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([str(s.BACKUP_DIR), s.BACKUP_INTERVAL_HOURS, s.BACKUP_KEEP, s.BACKUP_WEIGHTS, "
    "s.ARCHIVE_MAX_UPLOAD_BYTES, s.ARCHIVE_MAX_UNCOMPRESSED_BYTES, s.ARCHIVE_MAX_RATIO, s.ARCHIVE_MIN_FREE_BYTES]))"
)


def _settings(tmp_path, **values: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORA_MANAGER_ARCHIVE") and "BACKUP" not in k}
    env.update(DJANGO_SETTINGS_MODULE="lora_manager.settings", LORA_MANAGER_DATA_DIR=str(tmp_path / "data"))
    env.update({f"LORA_MANAGER_{k}": v for k, v in values.items()})
    return subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_archive_settings_parse_and_refuse_bad_values(tmp_path):
    good = _settings(
        tmp_path,
        BACKUP_DIR=str(tmp_path / "b"),
        BACKUP_INTERVAL_HOURS="0",
        BACKUP_KEEP="3",
        BACKUP_WEIGHTS="yes",
        ARCHIVE_MAX_UPLOAD_MB="5",
        ARCHIVE_MAX_UNCOMPRESSED_MB="7",
        ARCHIVE_MAX_RATIO="50",
        ARCHIVE_MIN_FREE_MB="0",
    )
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout) == [str(tmp_path / "b"), 0, 3, True, 5 * 2**20, 7 * 2**20, 50, 0]
    bad = _settings(tmp_path, BACKUP_KEEP="0")
    assert bad.returncode != 0 and "LORA_MANAGER_BACKUP_KEEP=0 is out of range" in bad.stderr
    bad = _settings(tmp_path, BACKUP_WEIGHTS="maybe")
    assert bad.returncode != 0 and "LORA_MANAGER_BACKUP_WEIGHTS='maybe' is not a boolean" in bad.stderr
