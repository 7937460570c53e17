"""Slipway settings: everything comes from environment variables (see README "Configuration").

The defaults give the embedded demo: SQLite under ./var, file-system artifact storage and a
file-system Celery broker, so nothing external has to run. ``DEBUG=false`` switches on the
production hardening that ``manage.py check --deploy`` asks for.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DATA_DIR = Path(env("SLIPWAY_DATA_DIR", default=str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="insecure-dev-key-change-me" if DEBUG else environ.Env.NOTSET)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "ninja",
    "csp",
    "apps.common",
    "apps.projects",
    "apps.features",
    "apps.registry",
    "apps.deployments",
    "apps.monitoring",
    "apps.releases",
    "apps.training",
    "apps.readiness",
]

MIDDLEWARE = [
    # /api/: JSON errors for everything (also what ninja never sees), unstorable text refused at the edge.
    "apps.common.api_edge.ApiEdgeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Fail closed: every page needs a login unless marked @login_not_required.
    "apps.common.middleware.PageLoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "apps.common.middleware.DomainErrorMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.common.startup.demo_banner",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'slipway.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + immediate transactions: the web process and the worker process write concurrently.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # A file (not :memory:) so live-server and Celery worker threads in tests share one database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-slipway.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "projects:project-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env("SLIPWAY_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
try:  # plotly.js is served from the plotly package itself: no CDN, no vendored copy.
    import plotly

    STATICFILES_DIRS.append(("vendor/plotly", Path(plotly.__file__).parent / "package_data"))
except ImportError:  # pragma: no cover
    pass
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "portal.staticfiles.VersionedStaticFilesStorage"
    },
}
if DEBUG:
    # development: static URLs carry their content hash (?v=…), so browsers may keep the files for a day
    # (plotly.min.js is 4.7 MB) and an edited file still gets a new URL. Production: hashed names, immutable.
    WHITENOISE_MAX_AGE = 24 * 3600
MEDIA_ROOT = DATA_DIR / "media"

# Artifact storage: content-addressed files written by the server (models, datasets, training sets).
ARTIFACT_ROOT = Path(env("SLIPWAY_ARTIFACT_ROOT", default=str(DATA_DIR / "artifacts")))
UPLOAD_MAX_BYTES = env.int("SLIPWAY_UPLOAD_MAX_BYTES", default=500 * 1024 * 1024)
# Django refuses bodies above this before parsing them (file parts are streamed and not counted).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("SLIPWAY_REQUEST_MAX_BYTES", default=10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = None

# Email: console backend by default; set EMAIL_URL (smtp://user:pass@host:587) in production.
# summarymail:// (what rundemo uses): each message saved under $SLIPWAY_DATA_DIR/mail/ and one line per message
# appended to mail/outbox.log — no full e-mails on the console.
environ.Env.EMAIL_SCHEMES.setdefault("summarymail", "apps.common.mail.SummaryFileBackend")
EMAIL_CONFIG = env.email("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="slipway@localhost")

# Celery. Default broker: kombu's file-system transport (no service needed, a few seconds of latency).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.rstrip("/") == "filesystem:":  # the folders are local: name the host, or kombu warns per connection
    CELERY_BROKER_URL = "filesystem://localhost//"
_broker_dir = DATA_DIR / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
)
if CELERY_BROKER_URL.startswith("filesystem"):
    CELERY_BROKER_TRANSPORT = "portal.fsbroker:Transport"  # kombu's, with an atomic put (see portal/fsbroker.py)
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # results live on the Job row
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=15 * 60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=16 * 60)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"workers.training.*": {"queue": "training"}}
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE: dict = {}

# Idempotency-Key records (apps.common.idempotency) older than this are deleted by an hourly beat task; a key
# reused after that is a new request.
IDEMPOTENCY_RETENTION_HOURS = env.int("SLIPWAY_IDEMPOTENCY_RETENTION_HOURS", default=168)
CELERY_BEAT_SCHEDULE["common-idempotency-records-prune"] = {
    "task": "workers.common.idempotency_records_prune", "schedule": 3600.0}

# Sessions and security. Production hardening when DEBUG is off.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]

# Content-Security-Policy (django-csp): scripts, styles, fonts, images and connections from the portal itself
# only. No inline <script> or on* handler anywhere (json_script data blocks are not scripts), no eval.
# No style="" attribute either (style-src-attr 'none'): templates use classes (bar widths: the |pct filter);
# scripts style through the CSSOM, which the CSP does not govern (charts.js sets chart heights that way, and
# static/js/csp-styles.js routes plotly.js's setAttribute("style", ...) there). Two inline <style> elements are allowed by hash
# only: the empty one plotly.js fills through the CSSOM, and the map CSS it adds when it loads
# (tests/test_csp.py recomputes both from the installed plotly.min.js, so an upgrade cannot pass unnoticed).
CSP_PLOTLY_STYLE_HASHES = [
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # "" (plotly.js-style-global, filled by insertRule)
    "'sha256-ji27qzEtxXZW+7dun6UwjHXJ18e6WAin1VvNtkzIE/o='",  # maplibre-gl CSS bundled in plotly.js 4.1.1
]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-elem": ["'self'", *CSP_PLOTLY_STYLE_HASHES],
        "style-src-attr": ["'none'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "apps.common.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}

# --- deployments ---
# Serving hot path and prediction log (see apps/deployments/serving.py and logpipe.py).
SERVING_MAX_BODY_BYTES = env.int("SERVING_MAX_BODY_BYTES", default=1024 * 1024)  # refused before reading
SERVING_MAX_BATCH = env.int("SERVING_MAX_BATCH", default=1000)  # upper bound of any deployment's batch limit
SERVING_STATE_TTL = env.float("SERVING_STATE_TTL", default=1.0)  # s between serving-state checks per process
# Models kept per process, least recently used evicted first, by measured size (not by count).
SERVING_MODEL_CACHE_BYTES = env.int("SERVING_MODEL_CACHE_BYTES", default=256 * 1024 * 1024)
# The last serving state this host saw (deployments, contracts, key hashes, model locations): a worker that
# starts while the database is down serves from it.
SERVING_STATE_SNAPSHOT = Path(env("SERVING_STATE_SNAPSHOT", default=str(DATA_DIR / "serving-state.json")))
# Entity-key deployments during a database outage (apps/deployments/online_cache.py): each process's copy of
# online values (bytes), views held whole when at most this many entities, and the host's file of those views.
SERVING_ONLINE_CACHE_BYTES = env.int("SERVING_ONLINE_CACHE_BYTES", default=64 * 1024 * 1024)
SERVING_ONLINE_PRELOAD_ROWS = env.int("SERVING_ONLINE_PRELOAD_ROWS", default=10_000)
SERVING_ONLINE_SNAPSHOT = Path(env("SERVING_ONLINE_SNAPSHOT", default=str(DATA_DIR / "serving-online.json")))
# Shell-style slug patterns this pool serves (comma-separated); empty: every deployment.
SERVING_DEPLOYMENTS = env.list("SERVING_DEPLOYMENTS", default=[])
SERVING_ACCESS_LOG = env.bool("SERVING_ACCESS_LOG", default=True)  # one JSON log line per prediction request
# Serving batches its success-path metric updates and access lines in memory and writes them every this many
# seconds (apps.common.flusher; also before /metrics and at a worker's exit). 0: write each one at once.
SERVING_OBSERVABILITY_FLUSH_S = env.float("SERVING_OBSERVABILITY_FLUSH_S", default=0.25)
SERVING_SPOOL_DIR = Path(env("SERVING_SPOOL_DIR", default=str(DATA_DIR / "prediction-spool")))
SERVING_SPOOL_FSYNC = env("SERVING_SPOOL_FSYNC", default="interval")  # "interval" (200 ms group fsync) | "always"
SERVING_SPOOL_SEGMENT_BYTES = env.int("SERVING_SPOOL_SEGMENT_BYTES", default=32 * 1024 * 1024)
SERVING_SPOOL_SEGMENT_SECONDS = env.float("SERVING_SPOOL_SEGMENT_SECONDS", default=300.0)
SERVING_DRAIN_IN_PROCESS = env.bool("SERVING_DRAIN_IN_PROCESS", default=True)  # drainer thread per web process
SERVING_DRAIN_INTERVAL = env.float("SERVING_DRAIN_INTERVAL", default=1.0)
SERVING_DRAINER_NICE = env.int("SERVING_DRAINER_NICE", default=19)  # drainer CPU priority: 19 = leftovers only
SERVING_DRAIN_BATCH = env.int("SERVING_DRAIN_BATCH", default=5000)
SERVING_LOG_RETENTION_DAYS = env.int("SERVING_LOG_RETENTION_DAYS", default=90)
METRICS_TOKEN = env("METRICS_TOKEN", default="")  # if set, /metrics needs "Authorization: Bearer <token>"
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Fail fast (a clean 503) instead of hanging when PostgreSQL is unreachable.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))
    # Server-side prepared statements for the few hand-written hot reads (the online feature store):
    # psycopg prepares a query after 5 runs on a connection; Django's own (client-side bound) queries are
    # never prepared. Set DATABASE_PREPARED_STATEMENTS=false behind a transaction-pooling PgBouncer.
    DATABASES["default"]["OPTIONS"].setdefault(
        "prepare_threshold", 5 if env.bool("DATABASE_PREPARED_STATEMENTS", default=True) else None)
CELERY_BEAT_SCHEDULE["deployments-prediction-log-drain"] = {
    "task": "workers.deployments.prediction_log_drain", "schedule": env.float("SERVING_BEAT_DRAIN_SECONDS", default=5.0)}
CELERY_BEAT_SCHEDULE["deployments-prediction-log-prune"] = {
    "task": "workers.deployments.prediction_log_prune", "schedule": 3600.0}

# --- features ---
# Optional Redis online store (e.g. redis://127.0.0.1:6379/5). Empty: the PostgreSQL/SQLite table.
FEATURES_ONLINE_REDIS_URL = env("SLIPWAY_FEATURES_REDIS_URL", default="")
# Source and label uploads larger than this (bytes) or wider than this (columns) are parsed by a background job
# with progress (202 + job), so no web request waits on them.
FEATURES_UPLOAD_SYNC_MAX_BYTES = env.int("SLIPWAY_FEATURES_UPLOAD_SYNC_MAX_BYTES", default=4 * 1024 * 1024)
FEATURES_UPLOAD_SYNC_MAX_COLUMNS = env.int("SLIPWAY_FEATURES_UPLOAD_SYNC_MAX_COLUMNS", default=500)
# Hot read paths (the online feature lookup) remember token → user and (user, project, feature set) → access
# for this many seconds per process: a revoked token or removed member is refused there within it. 0: off.
API_HOT_PATH_CACHE_TTL = env.float("API_HOT_PATH_CACHE_TTL", default=1.0)
# How often beat looks for feature views whose materialization schedule is due (seconds).
CELERY_BEAT_SCHEDULE["features-materialize-due"] = {
    "task": "workers.features.feature_view_materialize_due",
    "schedule": env.int("SLIPWAY_FEATURES_SCHEDULE_SECONDS", default=60),
}

# --- registry ---
# Decompressed size limits for compressed joblib uploads and skops archives (bombs are refused).
REGISTRY_INFLATE_MAX_BYTES = env.int("SLIPWAY_REGISTRY_INFLATE_MAX_BYTES", default=2 * 1024 * 1024 * 1024)
REGISTRY_INFLATE_MAX_RATIO = env.float("SLIPWAY_REGISTRY_INFLATE_MAX_RATIO", default=200.0)
# The isolated loader process: address-space limit and wall-clock timeout.
REGISTRY_SANDBOX_MEMORY_BYTES = env.int("SLIPWAY_REGISTRY_SANDBOX_MEMORY_BYTES", default=3 * 1024 * 1024 * 1024)
REGISTRY_SANDBOX_TIMEOUT_SECONDS = env.int("SLIPWAY_REGISTRY_SANDBOX_TIMEOUT_SECONDS", default=300)
# Holdout / training-data files: rows read at most (larger files are refused, not truncated).
REGISTRY_TABLE_MAX_ROWS = env.int("SLIPWAY_REGISTRY_TABLE_MAX_ROWS", default=2_000_000)

# --- monitoring ---
# The beat tick closes due windows and shows a new deployment's first (partial) window; it is cheap when
# nothing is due. The trailing partial window is recomputed at most every MONITORING_PARTIAL_REFRESH_SECONDS.
MONITORING_TICK_SECONDS = env.int("MONITORING_TICK_SECONDS", default=15)
MONITORING_PARTIAL_REFRESH_SECONDS = env.int("MONITORING_PARTIAL_REFRESH_SECONDS", default=60)
MONITORING_MAX_WINDOW_ROWS = env.int("MONITORING_MAX_WINDOW_ROWS", default=200_000)
# windows close only on request times the prediction log has surely caught up with (drainers' delay)
MONITORING_LOG_SETTLE_SECONDS = env.float("MONITORING_LOG_SETTLE_SECONDS", default=60.0)
MONITORING_LOG_MAX_WAIT_SECONDS = env.float("MONITORING_LOG_MAX_WAIT_SECONDS", default=900.0)
MONITORING_PENDING_OUTCOME_SECONDS = env.int("MONITORING_PENDING_OUTCOME_SECONDS", default=3600)
MONITORING_OUTCOMES_SYNC_MAX = env.int("MONITORING_OUTCOMES_SYNC_MAX", default=10_000)
MONITORING_REFERENCE_MAX_ROWS = env.int("MONITORING_REFERENCE_MAX_ROWS", default=100_000)
MONITORING_WEBHOOK_TIMEOUT_S = env.float("MONITORING_WEBHOOK_TIMEOUT_S", default=5.0)
MONITORING_WEBHOOK_BACKOFF_S = env.float("MONITORING_WEBHOOK_BACKOFF_S", default=10.0)
CELERY_BEAT_SCHEDULE["monitoring-tick"] = {"task": "workers.monitoring.monitoring_tick",
                                           "schedule": MONITORING_TICK_SECONDS}

# --- training + retraining (apps/training: training jobs, retraining policies) ---
# A training job whose worker was lost more often than this is failed instead of retried.
TRAINING_MAX_ATTEMPTS = env.int("TRAINING_MAX_ATTEMPTS", default=3)
# The Celery queue training jobs are sent to (workers started with -Q training consume it).
TRAINING_QUEUE = env("TRAINING_QUEUE", default="training")
CELERY_BEAT_SCHEDULE["training-jobs-reap"] = {"task": "workers.retraining.training_jobs_reap", "schedule": 300}
# How often beat evaluates retraining policies and advances their chains (training → shadow → promotion).
RETRAINING_TICK_SECONDS = env.int("RETRAINING_TICK_SECONDS", default=30)
CELERY_BEAT_SCHEDULE["retraining-tick"] = {"task": "workers.retraining.retraining_tick",
                                           "schedule": RETRAINING_TICK_SECONDS}

# --- promotion ---
# Shadow runs and approval-gated promotion (apps/releases/services/shadow.py, promotion.py).
SHADOW_TICK_SECONDS = env.float("SHADOW_TICK_SECONDS", default=30.0)  # beat: score + compare active shadow runs
SHADOW_BATCH_SIZE = env.int("SHADOW_BATCH_SIZE", default=1000)  # logged requests scored per batch (one transaction)
SHADOW_MAX_ROWS_PER_PASS = env.int("SHADOW_MAX_ROWS_PER_PASS", default=50_000)  # per run per tick/job
SHADOW_COMPARE_MAX_ROWS = env.int("SHADOW_COMPARE_MAX_ROWS", default=50_000)  # most recent pairs compared
SHADOW_BOOTSTRAP_RESAMPLES = env.int("SHADOW_BOOTSTRAP_RESAMPLES", default=1000)
# Links in e-mails. Unset: rundemo uses the address it listens on; otherwise http://127.0.0.1:8000.
SLIPWAY_BASE_URL = env("SLIPWAY_BASE_URL", default="http://127.0.0.1:8000")
CELERY_BEAT_SCHEDULE["deployments-shadow-tick"] = {"task": "workers.releases.shadow_tick",
                                                   "schedule": SHADOW_TICK_SECONDS}

# --- readiness ---
# A dated readiness snapshot of every active project once a day (the portfolio's trend reads them).
CELERY_BEAT_SCHEDULE["readiness-snapshot-daily"] = {
    "task": "workers.readiness.readiness_snapshot_daily",
    "schedule": env.int("READINESS_SNAPSHOT_SECONDS", default=3600),  # hourly check; one snapshot per project per day
}
