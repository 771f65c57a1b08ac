"""Loaded with ``-p`` before Django starts: keeps a bare ``pytest`` run away from real data.

``make test`` sets these itself (with a private Redis); a direct ``pytest`` gets a separate data
directory and Redis database 15, because the suite flushes the Redis database it is given.
"""

import os
from pathlib import Path

_root = Path(__file__).resolve().parent.parent
os.environ.setdefault("LORA_MANAGER_DATA_DIR", str(_root / "data" / "test"))
if not (os.environ.get("LORA_MANAGER_REDIS_URL") or os.environ.get("REDIS_URL")):
    os.environ["LORA_MANAGER_REDIS_URL"] = "redis://127.0.0.1:6379/15"
os.environ.setdefault("LORA_MANAGER_RESCAN_INTERVAL_MINUTES", "0")
os.environ.setdefault("LORA_MANAGER_CIVITAI_URL", "off")  # never civitai.com from tests: they use the stand-in
