"""Run benchmarks: ``python -m benchmarks [names...]`` (all when none named), one JSON line per result.

Each benchmark is a module with ``run() -> dict | list[dict]``; figures carry their unit in the key
name. Benchmarks measure and report; they never fail on a slow figure.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

REGISTRY: dict[str, str] = {
    "scan": "benchmarks.scan",
    "scan_writes": "benchmarks.scan_writes",  # issue 16 one-off, not in the default run
    "hash": "benchmarks.hash",
    "embed": "benchmarks.embed",
    "similar": "benchmarks.similar",
    "prompt": "benchmarks.prompt",
    "gallery": "benchmarks.gallery",
    "generation": "benchmarks.generation",
    "dashboard": "benchmarks.dashboard",
    "archive": "benchmarks.archive",
    "civitai": "benchmarks.civitai",
    "startup": "benchmarks.startup",
    "serving": "benchmarks.serving",
}

OPT_IN = {"scan_writes"}  # run only when named: minutes of one-off measurement


def main(argv: list[str]) -> int:
    names = argv or [name for name in REGISTRY if name not in OPT_IN]
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lora_manager.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    for name in names:
        result = importlib.import_module(REGISTRY[name]).run()
        for item in result if isinstance(result, list) else [result]:
            print(json.dumps({"bench": name, **item}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
