"""The bulk actions a person can take over a selection of adapters, each declared once.

The library's bulk bar (``views/gallery.py``), ``POST /api/v1/adapters/bulk`` and the Django admin's
actions all take their actions from ``ACTIONS`` and run them with ``perform``, so an action has the same
function, permission, message and undo wherever it is started. Adding an action is one entry here.

The table sits above ``bulk_edit`` rather than in it because two actions start runs (a Civitai lookup, a
scan), and those modules import ``bulk_edit``: the table importing them from ``bulk_edit`` would be a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from adapters import bulk_edit, civitai_lookup, civitai_runs, scan_runs
from adapters.models import BulkAction, CivitaiRun

CHANGE = "adapters.change_adapter"  # every bulk action needs it, plus its own permission
DELETE = "adapters.delete_adapter"
SCAN = "adapters.scan_library"


class Refused(ValueError):
    """Nothing was done, and trying again later may work (another Civitai lookup is running)."""


@dataclass(frozen=True)
class Params:
    """What some actions need besides the selection (see ``Action.needs``)."""

    tags: tuple[str, ...] = ()
    base_model: str = ""


@dataclass(frozen=True)
class Done:
    """What ``perform`` did: rows changed (adapters, tag links or files), the sentence to show, and whether
    ``undo`` can take it back now."""

    changed: int
    message: str
    undoable: bool


# ``do`` returns how many rows it changed, or that and extra words for its message (e.g. the run's number).
Doer = Callable[[list[int], Params, object], "int | tuple[int, dict]"]


@dataclass(frozen=True)
class Action:
    name: str  # the form value, the API's "action" and the admin action's name
    label: str  # the button, and the admin's action menu
    do: Doer
    # str.format words: {adapters} {links} {files} (the count with its noun), {tags}, {base_model}, and
    # whatever ``do`` returns besides the count.
    message: str
    permission: str = CHANGE
    undo: Callable[[dict], str] | None = None  # restores what ``do`` recorded (a bulk_edit.undo_* function)
    records: str = ""  # the BulkAction.action that ``do`` records, i.e. what ``undo`` restores
    needs: tuple[str, ...] = ()  # Params fields that must be given: "tags", "base_model"
    confirm: bool = False  # the library asks before doing it
    offered: Callable[[], bool] | None = None  # shown only while this says so (Civitai can be switched off)

    @property
    def permissions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((CHANGE, self.permission)))

    @property
    def needs_tags(self) -> bool:
        return "tags" in self.needs

    @property
    def needs_base_model(self) -> bool:
        return "base_model" in self.needs


def _civitai(ids: list[int], params: Params, by) -> tuple[int, dict]:
    run = civitai_runs.start_run(CivitaiRun.Mode.SELECTED, ids, user=by)  # CivitaiOff (a ValueError) if off
    if run.mode != CivitaiRun.Mode.SELECTED or run.adapter_ids != ids:
        raise Refused(f"Civitai lookup #{run.pk} is already running; start this one when it has finished.")
    return len(ids), {"run": run.pk}


def _marked_then_scan(mark: Callable[[list[int]], int]) -> Doer:
    def do(ids: list[int], params: Params, by) -> tuple[int, dict]:
        return mark(ids), {"run": scan_runs.start_scan(user=by).pk}

    return do


def _remove(ids: list[int], params: Params, by) -> tuple[int, dict]:
    count = bulk_edit.remove_from_catalog(ids, by=by)
    final = "" if len(ids) <= bulk_edit.MAX_UNDOABLE_REMOVAL else " This removal was too large to undo."
    return count, {"final": final}


_ACTIONS = (
    Action(
        "activate",
        "Activate",
        lambda ids, p, by: bulk_edit.set_active(ids, True, by=by),
        "{adapters} activated.",
        undo=bulk_edit.undo_set_field,
        records="set_active",
    ),
    Action(
        "deactivate",
        "Deactivate",
        lambda ids, p, by: bulk_edit.set_active(ids, False, by=by),
        "{adapters} deactivated.",
        undo=bulk_edit.undo_set_field,
        records="set_active",
    ),
    Action(
        "favorite",
        "Favorite",
        lambda ids, p, by: bulk_edit.set_favorite(ids, True, by=by),
        "{adapters} marked favorite.",
        undo=bulk_edit.undo_set_field,
        records="set_favorite",
    ),
    Action(
        "unfavorite",
        "Unfavorite",
        lambda ids, p, by: bulk_edit.set_favorite(ids, False, by=by),
        "{adapters} no longer favorite.",
        undo=bulk_edit.undo_set_field,
        records="set_favorite",
    ),
    Action(
        "add_tags",
        "Add tags",
        lambda ids, p, by: bulk_edit.add_tags(ids, p.tags, by=by),
        "{links} added ({tags}).",
        undo=bulk_edit.undo_add_tags,
        records="add_tags",
        needs=("tags",),
    ),
    Action(
        "remove_tags",
        "Remove tags",
        lambda ids, p, by: bulk_edit.remove_tags(ids, p.tags, by=by),
        "{links} removed ({tags}).",
        undo=bulk_edit.undo_remove_tags,
        records="remove_tags",
        needs=("tags",),
    ),
    Action(
        "set_base_model",
        "Set base model",
        lambda ids, p, by: bulk_edit.set_base_model(ids, p.base_model, by=by),
        "{adapters} set to base model {base_model}.",
        undo=bulk_edit.undo_set_field,
        records="set_base_model",
        needs=("base_model",),
    ),
    Action(
        "civitai",
        "Look up on Civitai",
        _civitai,
        "Civitai lookup #{run} started for {adapters}: progress under Civitai in the library.",
        offered=civitai_lookup.enabled,
    ),
    Action(
        "rescan",
        "Rescan",
        _marked_then_scan(bulk_edit.mark_for_rescan),
        "{files} will be re-read by scan #{run}.",
        permission=SCAN,
    ),
    Action(
        "rehash",
        "Re-hash",
        _marked_then_scan(bulk_edit.mark_for_rehash),
        "{files} will be re-hashed by scan #{run}.",
        permission=SCAN,
    ),
    Action(
        "remove",
        "Remove from catalog",
        _remove,
        "{adapters} removed from the catalog (files stay on disk).{final}",
        permission=DELETE,
        undo=bulk_edit.undo_remove,
        records="remove",
        confirm=True,
    ),
)
ACTIONS: dict[str, Action] = {action.name: action for action in _ACTIONS}


def allowed(user, action: Action) -> bool:
    return user.has_perms(action.permissions)


def offered(user) -> list[Action]:
    """The actions to show this person: those they may use and that are switched on."""
    return [a for a in ACTIONS.values() if allowed(user, a) and (a.offered is None or a.offered())]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def perform(name: str, ids: list[int], params: Params, by) -> Done:
    """Run action ``name`` over existing adapter ids as ``by`` (the caller checked ``allowed``).

    Raises ``Refused`` when it did nothing but may work later, ValueError when the request is wrong (a bad
    tag, a missing parameter, Civitai switched off); either way the message is a sentence for the user.
    """
    action = ACTIONS[name]
    tags = tuple(dict.fromkeys(bulk_edit.normalize_tag(t) for t in params.tags if t.strip()))
    params = Params(tags=tags, base_model=params.base_model)
    missing = [need for need in action.needs if not getattr(params, need)]
    if missing:
        raise ValueError(f"{action.label} needs {' and '.join(missing).replace('_', ' ')}.")
    result = action.do(ids, params, by)
    changed, extra = result if isinstance(result, tuple) else (result, {})
    words = {
        "adapters": _plural(changed, "adapter"),
        "links": _plural(changed, "tag link"),
        "files": _plural(changed, "file"),
        "tags": ", ".join(params.tags),
        "base_model": params.base_model,
        **extra,
    }
    latest = bulk_edit.latest_undoable(by) if action.undo else None
    undoable = latest is not None and latest.action == action.records
    return Done(changed, action.message.format(**words), undoable)


def undo(record: BulkAction) -> str:
    """Take back a recorded bulk action with its table entry's undo; ValueError if it cannot be."""
    restore = next((a.undo for a in ACTIONS.values() if a.undo and a.records == record.action), None)
    if restore is None:
        raise ValueError(f"unknown action {record.action!r}")
    return bulk_edit.undo(record, restore)
