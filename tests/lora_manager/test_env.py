from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from lora_manager import env


def test_bool_accepts_the_usual_spellings():
    for value in ("1", "true", "YES", "on"):
        assert env.env_bool("DEBUG", False, {"LORA_MANAGER_DEBUG": value}) is True
    for value in ("0", "false", "No", "off", ""):
        assert env.env_bool("DEBUG", True, {"LORA_MANAGER_DEBUG": value}) is False
    assert env.env_bool("DEBUG", True, {}) is True


def test_bool_rejects_anything_else_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match=r"LORA_MANAGER_DEBUG='maybe'.*true/false"):
        env.env_bool("DEBUG", False, {"LORA_MANAGER_DEBUG": "maybe"})


def test_int_range_and_garbage():
    assert env.env_int("N", 5, {}) == 5
    assert env.env_int("N", 5, {"LORA_MANAGER_N": " 7 "}, minimum=1, maximum=10) == 7
    with pytest.raises(ImproperlyConfigured, match="LORA_MANAGER_N='x' is not a whole number"):
        env.env_int("N", 5, {"LORA_MANAGER_N": "x"})
    with pytest.raises(ImproperlyConfigured, match="out of range"):
        env.env_int("N", 5, {"LORA_MANAGER_N": "11"}, minimum=1, maximum=10)


def test_paths_split_on_colons_and_resolve(tmp_path):
    value = f"{tmp_path}/a::{tmp_path}/b "
    assert env.env_paths("LIBRARY_DIRS", {"LORA_MANAGER_LIBRARY_DIRS": value}) == [tmp_path / "a", tmp_path / "b"]
    assert env.env_paths("LIBRARY_DIRS", {}) == []


def test_url_scheme_checked_and_plain_fallback_used():
    environ = {"REDIS_URL": "redis://example:6379/2"}
    assert env.env_url("REDIS_URL", "redis://x", ("redis",), environ, fallback="REDIS_URL") == "redis://example:6379/2"
    prefixed = {"REDIS_URL": "redis://a/1", "LORA_MANAGER_REDIS_URL": "redis://b/2"}
    assert env.env_url("REDIS_URL", "", ("redis",), prefixed, fallback="REDIS_URL") == "redis://b/2"
    with pytest.raises(ImproperlyConfigured, match=r"LORA_MANAGER_REDIS_URL='http://x'.*redis://"):
        env.env_url("REDIS_URL", "", ("redis",), {"LORA_MANAGER_REDIS_URL": "http://x"})


def test_database_config_sqlite_is_tuned_for_a_server(tmp_path):
    config = env.database_config(f"sqlite:///{tmp_path}/db.sqlite3", tmp_path)
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == f"{tmp_path}/db.sqlite3"
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert config["OPTIONS"]["timeout"] >= 5


def test_database_config_postgres():
    config = env.database_config("postgres://me:p%40ss@db.local:5433/lora?sslmode=require", Path("/tmp"))
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["USER"], config["PASSWORD"], config["HOST"], config["PORT"], config["NAME"]) == (
        "me",
        "p@ss",
        "db.local",
        "5433",
        "lora",
    )
    assert config["OPTIONS"] == {"sslmode": "require"}


@pytest.mark.parametrize("url", ["mysql://x/y", "postgres://host:5432/", "sqlite://", "postgres://h:notaport/db"])
def test_database_config_rejects_bad_urls(url):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env.database_config(url, Path("/tmp"))


def test_secret_key_generated_once_and_kept(tmp_path):
    first = env.secret_key(tmp_path, {})
    assert len(first) >= 40
    assert env.secret_key(tmp_path, {}) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert env.secret_key(tmp_path, {"LORA_MANAGER_SECRET_KEY": "k" * 40}) == "k" * 40
    with pytest.raises(ImproperlyConfigured, match="too short"):
        env.secret_key(tmp_path, {"LORA_MANAGER_SECRET_KEY": "short"})


def test_bad_setting_stops_startup(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={
            "DJANGO_SETTINGS_MODULE": "lora_manager.settings",
            "LORA_MANAGER_DATA_DIR": str(tmp_path),
            "LORA_MANAGER_DEBUG": "perhaps",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: LORA_MANAGER_DEBUG='perhaps'" in result.stderr


def test_named_urls_parse_in_order_and_skip_empty_entries():
    environ = {"LORA_MANAGER_SDNEXT_BACKENDS": " gpu1=http://10.0.0.5:7860 , ,big-box=https://u:p%2C@sd.example/x,"}
    assert env.env_named_urls("SDNEXT_BACKENDS", ("http", "https"), environ) == {
        "gpu1": "http://10.0.0.5:7860",
        "big-box": "https://u:p%2C@sd.example/x",
    }
    assert env.env_named_urls("SDNEXT_BACKENDS", ("http",), {}) == {}
    assert env.env_named_urls("SDNEXT_BACKENDS", ("http",), {"LORA_MANAGER_SDNEXT_BACKENDS": "  "}) == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gpu1", "is not name=url"),
        ("gpu1=", "is not name=url"),
        ("GPU=http://a:1", "not a usable name"),
        ("a b=http://a:1", "not a usable name"),
        ("-x=http://a:1", "not a usable name"),
        ("x=http://a:1,x=http://b:2", "given twice"),
        ("x=ftp://a", "not a URL this app accepts"),
        ("x=localhost:7860", "not a URL this app accepts"),
    ],
)
def test_named_urls_are_strict(value, message):
    with pytest.raises(ImproperlyConfigured, match=f"LORA_MANAGER_SDNEXT_BACKENDS: .*{message}"):
        env.env_named_urls("SDNEXT_BACKENDS", ("http", "https"), {"LORA_MANAGER_SDNEXT_BACKENDS": value})


def test_split_credentials_takes_user_and_password_out_of_the_url():
    assert env.split_credentials("http://me:p%40ss@gpu:7860/sd") == ("http://gpu:7860/sd", "me", "p@ss")
    assert env.split_credentials("http://gpu:7860") == ("http://gpu:7860", "", "")
    assert env.split_credentials("") == ("", "", "")


def test_sdnext_backends_default_first_then_named_ones():
    environ = {"LORA_MANAGER_SDNEXT_BACKENDS": "gpu1=http://me:pw@gpu1:7860"}
    assert env.sdnext_backends("http://main:7860", "u", "p", environ) == {
        "default": {"URL": "http://main:7860", "USER": "u", "PASSWORD": "p"},
        "gpu1": {"URL": "http://gpu1:7860", "USER": "me", "PASSWORD": "pw"},
    }
    assert env.sdnext_backends("", "", "", {}) == {"default": {"URL": "", "USER": "", "PASSWORD": ""}}
    in_url = env.sdnext_backends("http://me:pw@main:7860", "", "", {})
    assert in_url == {"default": {"URL": "http://main:7860", "USER": "me", "PASSWORD": "pw"}}
    only_named = env.sdnext_backends("", "", "", {"LORA_MANAGER_SDNEXT_BACKENDS": "default=http://x:1"})
    assert only_named == {"default": {"URL": "http://x:1", "USER": "", "PASSWORD": ""}}
    with pytest.raises(ImproperlyConfigured, match="keep only one"):
        env.sdnext_backends("http://main:7860", "", "", {"LORA_MANAGER_SDNEXT_BACKENDS": "default=http://x:1"})


def test_url_or_off_switches_a_feature_off_or_checks_the_url():
    schemes = ("http", "https")
    assert env.env_url_or_off("CIVITAI_URL", "https://civitai.com", schemes, {}) == "https://civitai.com"
    for off in ("", "off", "OFF", "false", "0", "none"):
        assert (
            env.env_url_or_off("CIVITAI_URL", "https://civitai.com", schemes, {"LORA_MANAGER_CIVITAI_URL": off}) == ""
        )
    mine = {"LORA_MANAGER_CIVITAI_URL": "http://127.0.0.1:7862"}
    assert env.env_url_or_off("CIVITAI_URL", "https://civitai.com", schemes, mine) == "http://127.0.0.1:7862"
    with pytest.raises(ImproperlyConfigured, match=r"LORA_MANAGER_CIVITAI_URL='ftp://x'.*http://"):
        env.env_url_or_off("CIVITAI_URL", "", schemes, {"LORA_MANAGER_CIVITAI_URL": "ftp://x"})


def test_float_seconds_with_bounds():
    assert env.env_float("CIVITAI_MIN_INTERVAL", 1.0, {}) == 1.0
    assert env.env_float("CIVITAI_MIN_INTERVAL", 1.0, {"LORA_MANAGER_CIVITAI_MIN_INTERVAL": " 0.25 "}) == 0.25
    for bad, message in [("fast", "not a number"), ("-1", "out of range"), ("nan", "out of range"), ("1e9", "range")]:
        with pytest.raises(ImproperlyConfigured, match=f"LORA_MANAGER_CIVITAI_MIN_INTERVAL.*{message}"):
            env.env_float("CIVITAI_MIN_INTERVAL", 1.0, {"LORA_MANAGER_CIVITAI_MIN_INTERVAL": bad}, maximum=600)


def test_civitai_settings_are_parsed_strictly_at_startup(tmp_path):
    import subprocess
    import sys

    base = {"DJANGO_SETTINGS_MODULE": "lora_manager.settings", "LORA_MANAGER_DATA_DIR": str(tmp_path)}
    base["PATH"] = "/usr/bin:/bin"
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.CIVITAI_URL, s.CIVITAI_API_KEY, s.CIVITAI_MIN_INTERVAL, s.CIVITAI_AUTO)"
    )
    root = Path(__file__).resolve().parents[2]
    good = {
        **base,
        "LORA_MANAGER_CIVITAI_URL": "http://localhost:7862/",
        "LORA_MANAGER_CIVITAI_API_KEY": "k",
        "LORA_MANAGER_CIVITAI_MIN_INTERVAL": "2.5",
        "LORA_MANAGER_CIVITAI_AUTO": "yes",
    }
    result = subprocess.run([sys.executable, "-c", code], env=good, capture_output=True, text=True, cwd=root)
    assert result.stdout.split() == ["http://localhost:7862", "k", "2.5", "True"], result.stderr
    bad = {**base, "LORA_MANAGER_CIVITAI_AUTO": "sometimes"}
    result = subprocess.run([sys.executable, "-c", code], env=bad, capture_output=True, text=True, cwd=root)
    assert result.returncode != 0 and "LORA_MANAGER_CIVITAI_AUTO='sometimes'" in result.stderr


def test_sidecar_writes_are_off_by_default_and_strict():
    name = "LORA_MANAGER_WRITE_SIDECARS"
    assert env.env_sidecar_writes("WRITE_SIDECARS", {}) == ""
    for off in ("", "off", "0", "false", "None", " no "):
        assert env.env_sidecar_writes("WRITE_SIDECARS", {name: off}) == ""
    assert env.env_sidecar_writes("WRITE_SIDECARS", {name: " A1111 "}) == "a1111"
    with pytest.raises(ImproperlyConfigured, match=r"LORA_MANAGER_WRITE_SIDECARS='sdnext'.*use a1111, or off"):
        env.env_sidecar_writes("WRITE_SIDECARS", {name: "sdnext"})


def test_sidecar_writes_setting_is_off_unless_asked(settings):
    assert settings.WRITE_SIDECARS == ""
