"""Strict parsers for settings taken from the environment.

Every helper names the variable and what it accepts when a value is bad, so a typo in a deployment
stops start-up with a message instead of running with a surprising default.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

PREFIX = "LORA_MANAGER_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def raw(name: str, environ: Mapping[str, str] | None = None, fallback: str | None = None) -> str | None:
    """The value of LORA_MANAGER_<name>, else of the plain fallback name (DATABASE_URL, REDIS_URL)."""
    environ = os.environ if environ is None else environ
    value = environ.get(PREFIX + name)
    if value is None and fallback:
        value = environ.get(fallback)
    return value


def env_str(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    value = raw(name, environ)
    return default if value is None else value


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = raw(name, environ)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{PREFIX}{name}={value!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off."
    )


def env_int(
    name: str,
    default: int,
    environ: Mapping[str, str] | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{PREFIX}{name}={value!r} is not a whole number.") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        bounds = f"from {minimum if minimum is not None else '-inf'} to {maximum if maximum is not None else 'inf'}"
        raise ImproperlyConfigured(f"{PREFIX}{name}={number} is out of range: use a number {bounds}.")
    return number


SIDECAR_FORMATS = ("a1111",)
_OFF = {"", "0", "off", "false", "no", "none"}


def env_sidecar_writes(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Which sidecar format edits are written back to: "" (off, the default) or "a1111" (<stem>.json)."""
    value = raw(name, environ)
    if value is None or value.strip().lower() in _OFF:
        return ""
    lowered = value.strip().lower()
    if lowered in SIDECAR_FORMATS:
        return lowered
    raise ImproperlyConfigured(
        f"{PREFIX}{name}={value!r} is not a sidecar format this app writes: use "
        + " or ".join(SIDECAR_FORMATS)
        + ", or off."
    )


def env_list(name: str, default: list[str], environ: Mapping[str, str] | None = None, sep: str = ",") -> list[str]:
    value = raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(sep) if item.strip()]


def env_paths(name: str, environ: Mapping[str, str] | None = None) -> list[Path]:
    """Paths separated by ':' (like PATH); each must be absolute or is made absolute from the cwd."""
    value = raw(name, environ)
    if not value:
        return []
    paths = []
    for item in value.split(":"):
        item = item.strip()
        if not item:
            continue
        if "\x00" in item:
            raise ImproperlyConfigured(f"{PREFIX}{name} contains a NUL byte: use plain paths separated by ':'.")
        paths.append(Path(item).expanduser().resolve())
    return paths


def env_url(
    name: str,
    default: str,
    schemes: tuple[str, ...],
    environ: Mapping[str, str] | None = None,
    fallback: str | None = None,
) -> str:
    value = raw(name, environ, fallback)
    if value is None or value.strip() == "":
        return default
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise ImproperlyConfigured(
            f"{PREFIX}{name}={value!r} is not a URL this app accepts: use one starting with "
            + " or ".join(f"{s}://" for s in schemes)
            + "."
        )
    return value


def running_app_redis_url(data_dir: Path) -> str | None:
    """The URL of the private Redis a running ``make run`` started for ``data_dir`` (None if there is none).

    The launcher writes it to ``<data dir>/redis/url`` and removes the file when it stops. Settings use it
    when no Redis is configured, so ``.venv/bin/python manage.py ...`` with make run's data directory queues
    work where make run's worker sees it, instead of on another Redis where the command's start-up checks
    take the worker's running jobs for lost ones."""
    try:
        url = (data_dir / "redis" / "url").read_text().strip()
    except OSError:
        return None
    return url or None


_OFF = {"", "off", "none", "false", "0", "no"}


def env_url_or_off(name: str, default: str, schemes: tuple[str, ...], environ: Mapping[str, str] | None = None) -> str:
    """A URL that can also be switched off: unset gives ``default``; empty, "off", "false", "0" give "" (off)."""
    value = raw(name, environ)
    if value is None:
        return default
    if value.strip().lower() in _OFF:
        return ""
    return env_url(name, default, schemes, environ)


def env_float(
    name: str, default: float, environ: Mapping[str, str] | None = None, minimum: float = 0.0, maximum: float = 3600.0
) -> float:
    """A number of seconds and the like: decimal point allowed, bounds checked, no nan/inf."""
    value = raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{PREFIX}{name}={value!r} is not a number (e.g. 1.5).") from None
    if not (minimum <= number <= maximum):  # also refuses nan
        raise ImproperlyConfigured(
            f"{PREFIX}{name}={value.strip()} is out of range: use a number from {minimum:g} to {maximum:g}."
        )
    return number


NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def env_named_urls(name: str, schemes: tuple[str, ...], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``name=url,name2=url2`` as {name: url}, in order; names are lower-case words usable in queue names.

    Strict: an entry without ``=``, a bad name, a repeated name or a URL with another scheme stops start-up.
    Commas inside a URL (say in a password) must be written as %2C.
    """
    value = raw(name, environ)
    if not value or not value.strip():
        return {}
    result: dict[str, str] = {}
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        key, sep, url = (part.strip() for part in entry.partition("="))
        if not sep or not url:
            raise ImproperlyConfigured(f"{PREFIX}{name}: {entry!r} is not name=url (e.g. gpu1=http://10.0.0.5:7860).")
        if not NAME_RE.match(key):
            raise ImproperlyConfigured(
                f"{PREFIX}{name}: {key!r} is not a usable name: use 1-32 lower-case letters, digits, '-' or '_'."
            )
        if key in result:
            raise ImproperlyConfigured(f"{PREFIX}{name}: the name {key!r} is given twice.")
        parts = urlsplit(url)
        if parts.scheme not in schemes or not parts.netloc:
            raise ImproperlyConfigured(
                f"{PREFIX}{name}: {url!r} (for {key!r}) is not a URL this app accepts: use one starting with "
                + " or ".join(f"{s}://" for s in schemes)
                + "."
            )
        result[key] = url
    return result


def split_credentials(url: str) -> tuple[str, str, str]:
    """(url without user:password@, user, password): credentials never show up in messages or logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, "", ""
    host = parts.netloc.rpartition("@")[2]
    return (
        urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)),
        unquote(parts.username or ""),
        unquote(parts.password or ""),
    )


def sdnext_backends(url: str, user: str, password: str, environ: Mapping[str, str] | None = None) -> dict[str, dict]:
    """{name: {"URL", "USER", "PASSWORD"}}: "default" from LORA_MANAGER_SDNEXT_URL (possibly empty, meaning
    "not configured"), then LORA_MANAGER_SDNEXT_BACKENDS; naming "default" in both is a conflict."""
    named = env_named_urls("SDNEXT_BACKENDS", ("http", "https"), environ)
    if "default" in named and url:
        raise ImproperlyConfigured(
            f"{PREFIX}SDNEXT_BACKENDS names 'default' and {PREFIX}SDNEXT_URL is set too: keep only one of them."
        )
    plain, url_user, url_password = split_credentials(url)
    backends = {"default": {"URL": plain, "USER": user or url_user, "PASSWORD": password or url_password}}
    for name, value in named.items():
        plain, name_user, name_password = split_credentials(value)
        backends[name] = {"URL": plain, "USER": name_user, "PASSWORD": name_password}
    return backends


def generation_queues(env: Mapping[str, str]) -> list[str]:
    """One RQ queue per SD.Next backend (settings.RQ_QUEUES), read from the same variables settings read;
    the launcher and ops.supervise start a worker for each."""
    backends = sdnext_backends(env.get("LORA_MANAGER_SDNEXT_URL", ""), "", "", env)
    return [f"generation-{name}" for name in backends]


def database_config(url: str, data_dir: Path) -> dict:
    """Django DATABASES['default'] for a sqlite:// or postgres:// URL.

    SQLite is tuned for a server with a worker beside it: WAL, a busy timeout and IMMEDIATE
    transactions, so concurrent writers wait instead of failing with "database is locked".
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        if parts.netloc:  # sqlite://relative/path
            path = parts.netloc + path
        if path in ("", "/"):
            raise ImproperlyConfigured(
                f"{PREFIX}DATABASE_URL={url!r} names no file: use sqlite:////absolute/path.sqlite3."
            )
        if path.startswith("//"):
            path = path[1:]
        name = path if path == ":memory:" else str(Path(path if path.startswith("/") else data_dir / path))
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                # temp_store: statement journals of trigger-firing bulk writes in memory, not temp files (2.5x faster)
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                "PRAGMA temp_store=MEMORY;",
            },
            "TEST": {"NAME": str(data_dir / "test.sqlite3")},
        }
    if parts.scheme in ("postgres", "postgresql"):
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(
                f"{PREFIX}DATABASE_URL={url!r} names no database: use postgres://user@host:5432/dbname."
            )
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{PREFIX}DATABASE_URL={url!r} has a bad port number.") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": query,
        }
    raise ImproperlyConfigured(
        f"{PREFIX}DATABASE_URL={url!r}: use sqlite:////path/to/file.sqlite3 or postgres://user:pass@host:5432/db."
    )


def secret_key(data_dir: Path, environ: Mapping[str, str] | None = None) -> str:
    """The configured key, else one generated once and kept in the data directory (mode 600)."""
    value = raw("SECRET_KEY", environ)
    if value is not None:
        if len(value) < 32:
            raise ImproperlyConfigured(f"{PREFIX}SECRET_KEY is too short: use at least 32 random characters.")
        return value
    key_file = data_dir / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process started at the same moment and won
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


_INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def instance_name(configured: str, database: Mapping[str, object]) -> str:
    """LORA_MANAGER_INSTANCE, else a short name derived from the database (engine, host, port, name):
    two installations with their own databases never share a name, one installation always has the same."""
    configured = configured.strip()
    if configured:
        if not _INSTANCE_NAME.match(configured):
            raise ImproperlyConfigured(
                f"LORA_MANAGER_INSTANCE={configured!r}: use 1-40 letters, digits, '.', '_' or '-' (a letter or "
                "digit first)"
            )
        return configured
    identity = "|".join(str(database.get(key) or "") for key in ("ENGINE", "HOST", "PORT", "NAME"))
    return "db-" + hashlib.sha256(identity.encode()).hexdigest()[:10]
