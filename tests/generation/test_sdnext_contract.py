"""docs/sdnext-contract.md lists every SD.Next route the stand-in serves and the client calls, so the
written contract cannot drift from the code that follows it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from generation import sdnext
from tests.standins.sdnext import SDNextStandIn

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "sdnext-contract.md"
ROW = re.compile(r"^\|\s*(GET|POST|PUT|DELETE)\s*\|\s*`([^`]+)`\s*\|\s*([^|]*?)\s*\|\s*(yes|no)\s*\|", re.MULTILINE)


def documented() -> dict[tuple[str, str], tuple[str, bool]]:
    """(method, path) → (client method named in the table, served by the stand-in) from §2's table."""
    text = CONTRACT.read_text()
    section = text[text.index("## §2 ") : text.index("## §3 ")]
    rows = {(m, path): (client.strip("`()"), served == "yes") for m, path, client, served in ROW.findall(section)}
    assert len(rows) >= 10, "the endpoint table in docs/sdnext-contract.md §2 could not be parsed"
    return rows


def standin_routes() -> set[tuple[str, str]]:
    return set(SDNextStandIn()._routes)


def client_calls() -> dict[tuple[str, str], str]:
    """(method, path) → SDNextClient method, read from every ``self._call("METHOD", path, ...)``."""
    source = Path(sdnext.__file__).read_text()
    calls = {}
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.FunctionDef) and not node.name.startswith("_")):
            continue
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "_call":
                method, path = call.args[0], call.args[1]
                value = getattr(sdnext, path.id) if isinstance(path, ast.Name) else path.value
                calls[(method.value, value)] = node.name
    return calls


def test_every_standin_route_is_in_the_contract():
    rows = documented()
    missing = standin_routes() - set(rows)
    assert not missing, f"the stand-in serves routes docs/sdnext-contract.md §2 does not list: {sorted(missing)}"
    claimed = {route for route, (_, served) in rows.items() if served}
    lacking = sorted(claimed - standin_routes())
    assert not lacking, f"§2 says 'yes' for routes the stand-in does not serve: {lacking}"


def test_every_client_call_is_in_the_contract_under_its_method():
    rows, calls = documented(), client_calls()
    assert len(calls) >= 10  # the AST walk found the client's calls
    missing = set(calls) - set(rows)
    assert not missing, f"the client calls routes docs/sdnext-contract.md §2 does not list: {sorted(missing)}"
    wrong = {route: (rows[route][0], name) for route, name in calls.items() if rows[route][0] != name}
    assert not wrong, f"§2 names other client methods for these routes (doc, code): {wrong}"
    stale = {route for route, (name, _) in rows.items() if name not in ("", "—") and route not in calls}
    assert not stale, f"§2 names a client method for routes the client does not call: {sorted(stale)}"
