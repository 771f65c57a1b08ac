"""Raw multi-row INSERT and UPDATE for the catalog's hot paths (scanning 10,000+ files).

Django's bulk_create/bulk_update spend most of their time building SQL (a placeholder and a
conversion per field per row, a CASE per row in updates); SQLite and PostgreSQL themselves take a
fraction of that. These helpers prepare values once per column type and send plain statements.
Both engines support multi-row INSERT ... RETURNING (SQLite 3.35+).
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from django.db import connection, models

BATCH_ROWS = 400  # 40 columns x 400 rows stays under SQLite's 32,766 variables


def _converter(field: models.Field) -> Callable[[Any], Any]:
    if isinstance(field, models.JSONField):
        if connection.vendor == "sqlite" and field.encoder is None:
            return _sqlite_json
        return lambda value: None if value is None else connection.ops.adapt_json_value(value, field.encoder)
    if isinstance(field, models.DateTimeField):  # a batch's rows share one or two timestamps ("now")
        return functools.lru_cache(maxsize=64)(connection.ops.adapt_datetimefield_value)
    return _as_is


def _as_is(value: Any) -> Any:
    return value


def _sqlite_json(value: Any) -> str | None:
    """JSON text for SQLite, by orjson (json.dumps was a fifth of a scan's writing); what orjson cannot
    write (lone surrogates, keys that are not strings, integers over 64 bits) goes to json.dumps."""
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def insert_returning_ids(model: type[models.Model], objects: Sequence[models.Model]) -> None:
    """Insert ``objects`` and set their primary keys (auto_now/auto_now_add are filled in)."""
    if not objects:
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key and not f.generated]  # the DB computes those
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            for obj in objects:
                field.pre_save(obj, add=True)
    converted = [(i, convert) for i, convert in enumerate(map(_converter, fields)) if convert is not _as_is]
    getter = operator.itemgetter(*[f.attname for f in fields])  # a C call per row, a Python call per conversion
    row_values = getter if len(fields) > 1 else lambda values: (getter(values),)  # one name: not a tuple
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    table = quote(model._meta.db_table)
    with connection.cursor() as cursor:
        for start in range(0, len(objects), BATCH_ROWS):
            chunk = objects[start : start + BATCH_ROWS]
            params: list[Any] = []
            for obj in chunk:
                row = list(row_values(obj.__dict__))
                for i, convert in converted:
                    row[i] = convert(row[i])
                params.extend(row)
            sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([row_sql] * len(chunk))} RETURNING {quote('id')}"  # noqa: S608
            cursor.execute(sql, params)
            for obj, (pk,) in zip(chunk, cursor.fetchall(), strict=True):
                obj.pk = pk
                obj._state.adding = False
                obj._state.db = "default"


def update_rows(model: type[models.Model], columns: list[str], rows: list[tuple]) -> None:
    """One prepared UPDATE for many rows: each row is (value, ..., id)."""
    if not rows:
        return
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(column)} = %s" for column in columns)
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {quote(model._meta.db_table)} SET {sets} WHERE id = %s", rows)  # noqa: S608
