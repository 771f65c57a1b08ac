"""What the archive commands print for people: throttled progress counts on a terminal and the plan as text."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

UNITS = {"writing": "bytes", "verifying": "bytes"}


def echo_progress(stream: IO, interval: float = 0.5) -> Callable[[str, int, int], None]:
    """A progress callback printing ``phase done/total unit`` at most twice a second (and at the end)."""
    last = [0.0, ""]

    def report(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase == last[1] and now - last[0] < interval and done != total:
            return
        last[0], last[1] = now, phase
        unit = UNITS.get(phase, "")
        count = f" {done}/{total}" if total else ""
        stream.write(f"{phase}{count}{' ' + unit if unit and total else ''}\n")
        stream.flush()

    return report


def describe_plan(plan: dict) -> str:
    """The dry-run plan as a few lines: counts, sections, then each adapter that is not identical."""
    counts = plan["counts"]
    lines = [
        f"archive from {plan['created_at']} (app {plan['app_version']}"
        f"{', metadata only' if plan['metadata_only'] else ''}); on conflict: {plan['on_conflict']}",
        "adapters: " + ", ".join(f"{counts[k]} {k}" for k in ("new", "identical", "updated", "conflicting")),
    ]
    for name, section in plan["sections"].items():
        if section:
            lines.append(f"{name}: " + ", ".join(f"{v} {k}" for k, v in sorted(section.items())))
    if plan["targets"]:
        lines.append("library folders: " + ", ".join(plan["targets"]))
    lines.append(f"files to write: {plan.get('write_files', 0)} ({plan['write_bytes']} bytes)")
    for warning in plan["warnings"]:
        lines.append(f"warning: {warning}")
    for row in plan["adapters"]:
        detail = ""
        if row["differences"]:
            detail = f" (differs: {', '.join(row['differences'])}"
            detail += f"; edited here: {', '.join(row['conflicts'])})" if row["conflicts"] else ")"
        how = f" matched by {row['matched_by']}" if row["matched_by"] else ""
        lines.append(f"  {row['outcome']:<11} {row['name']}{how}{detail}")
    if plan.get("adapters_cut"):
        lines.append(f"  ... and {plan['adapters_cut']} more")
    return "\n".join(lines)
