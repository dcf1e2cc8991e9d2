"""Settings for homevisit, read from environment variables only.

With nothing set, the embedded default runs: SQLite in ``var/``, Celery tasks in-process, files on
local disk. ``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch to PostgreSQL and Redis.
"""

import datetime
import secrets
from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from homevisit.env import env_bool, env_broker_url, env_database, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("HOMEVISIT_VAR_DIR") or BASE_DIR / "var")

DEBUG = env_bool("DEBUG", default=False)

_database = env_database("DATABASE_URL")
EMBEDDED = _database is None


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        if len(key) < 32:
            raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long.")
        return key
    if not EMBEDDED:
        raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL is set (production).")
    # The embedded default keeps a generated key beside its SQLite file, so sessions survive restarts.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "homevisit.apps.HomevisitStaticFilesConfig",
    "django.contrib.humanize",
    "crispy_forms",
    "crispy_bootstrap5",
    "schools",
    "students",
    "visits",
    "ledgers",
    "oversight",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Pages compressed for phones on one bar of signal; static files come precompressed from
    # WhiteNoise. Django's GZip adds random bytes to each response against BREACH.
    "django.middleware.gzip.GZipMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "schools.middleware.NoStoreForAuthenticatedMiddleware",
    "schools.middleware.AuditRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "schools.middleware.ForcePasswordChangeMiddleware",
]

ROOT_URLCONF = "homevisit.urls"

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
                "visits.context_processors.unread_notifications",
            ],
        },
    },
]

WSGI_APPLICATION = "homevisit.wsgi.application"

if EMBEDDED:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "homevisit.sqlite3",
            # Import and seed jobs write while pages read; wait instead of failing at once.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
else:
    DATABASES = {"default": _database}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "schools.User"
AUTHENTICATION_BACKENDS = ["schools.backends.UserWithOrganisationBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文")]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True
LOCALE_PATHS = [BASE_DIR / "locale"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Front-end libraries come from the npm registry (`npm ci`); only their dist files are served.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/bootstrap", BASE_DIR / "node_modules" / "bootstrap" / "dist"),
    # Built by `npm run build` (esbuild) from frontend/: ECharts with only the modules the dashboards
    # use, and the visit form's offline copy.
    ("vendor/echarts", BASE_DIR / "build" / "echarts"),
    ("bundles", BASE_DIR / "build" / "bundles"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Uploaded rosters, photos and scans: outside any URL space, served only through views that check scope.
PRIVATE_FILES_ROOT = Path(env_str("PRIVATE_FILES_ROOT") or VAR_DIR / "private")

# An XLSX roster of a large school is a few MB; anything past this is refused before it is read.
IMPORT_MAX_UPLOAD_BYTES = env_int("IMPORT_MAX_UPLOAD_BYTES", 10 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# A body larger than the largest legitimate upload is refused before it is read (homevisit/uploads.py).
FILE_UPLOAD_HANDLERS = [
    "homevisit.uploads.RequestSizeLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Visit photos and scans (DESIGN §4): at most this many per record, each at most this large.
VISIT_ATTACHMENTS_MAX = 9
VISIT_ATTACHMENT_MAX_BYTES = env_int("VISIT_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)

# Notifications of overdue safety reports: in-app always; a WeCom/DingTalk-style robot webhook
# (JSON {"msgtype": "text", "text": {"content": ...}}) as well when its URL is set.
NOTIFY_WEBHOOK_URL = env_str("NOTIFY_WEBHOOK_URL") or ""

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Celery: without a broker, tasks run in-process (the embedded default).
CELERY_BROKER_URL = env_broker_url("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Beat jobs (production runs `celery beat`; the embedded default has no beat, see visits.views.safety).
CELERY_BEAT_SCHEDULE = {
    "safety-reports-overdue": {"task": "visits.tasks.safety_reports_overdue_sweep", "schedule": 300.0},
    "statistics-refresh-stale": {"task": "ledgers.tasks.statistics_refresh_stale_sweep", "schedule": 60.0},
    "import-jobs-stuck": {"task": "schools.tasks.import_jobs_stuck_requeue", "schedule": 300.0},
    "webhook-outbox": {"task": "visits.tasks.notify_webhook_outbox_sweep", "schedule": 300.0},
    "ledger-exports-purge": {"task": "ledgers.jobs.ledger_exports_purge", "schedule": 3600.0},
    "statistics-nightly": {
        "task": "ledgers.tasks.statistics_recompute_nightly",
        "schedule": crontab(hour=2, minute=30),
    },
    # the special-student ledgers' reminders (ledgers.reminders); each job checks the school calendar
    "care-asks-evening": {"task": "ledgers.reminders.care_asks_evening", "schedule": crontab(hour=18, minute=0)},
    "care-weekly": {"task": "ledgers.reminders.care_weekly", "schedule": crontab(hour=17, minute=0, day_of_week=5)},
    "support-prompts-daily": {
        "task": "ledgers.reminders.support_prompts_daily",
        "schedule": crontab(hour=7, minute=30),
    },
}

# Statistics refresh (DESIGN §7): a school's changes within this window are coalesced into one
# refresh (none in the embedded default, where tasks run in-process at once); figures are never
# left older than the staleness cap while changes keep coming; a full run whose worker stops
# making progress for the lease is taken over by the next one.
STATISTICS_REFRESH_DELAY = datetime.timedelta(
    seconds=env_int("STATISTICS_REFRESH_DELAY_SECONDS", 0 if CELERY_TASK_ALWAYS_EAGER else 30, minimum=0)
)
STATISTICS_MAX_STALENESS = datetime.timedelta(minutes=5)
STATISTICS_RUN_LEASE = datetime.timedelta(minutes=1)  # SQLite's claim; PostgreSQL's dies with its connection

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "homevisit": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    },
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=not EMBEDDED)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_HTTPS_PROXY") else None

# Reverse proxies in front of gunicorn (nginx): connections from these addresses have the client's
# address read from X-Forwarded-For (schools.services.client_ip), for the audit log and the lockout.
TRUSTED_PROXIES = frozenset(env_list("TRUSTED_PROXIES", []))

# --- Accounts and sessions (等保 2.0) ---
# What each setting answers for: README 「账号与会话安全（等保 2.0）」; the code: schools/accounts.py.
INSTALLED_APPS += ["axes", "csp"]
# The CSP header on every response, redirects and errors included; the session clock after
# authentication and messages and before the forced password change; axes last (its docs).
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "csp.middleware.CSPMiddleware")
MIDDLEWARE.insert(
    MIDDLEWARE.index("schools.middleware.ForcePasswordChangeMiddleware"), "schools.middleware.SessionTimeoutMiddleware"
)
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
# Axes' gate authenticates nobody: it refuses a locked-out attempt before the real backend runs.
AUTHENTICATION_BACKENDS = ["schools.accounts.LoginLockoutBackend", *AUTHENTICATION_BACKENDS]

# Login failures: two rules, both counted by django-axes from its per-attempt rows (one lockout
# parameter each: AXES_LOCKOUT_PARAMETERS lists both combinations; the limit callable says which
# one is reached, see schools.accounts.failure_limit).
# - Per address: five failures for one username from one address lock that pair, and only that
#   pair: the same account from another address, and other accounts from the same address (a
#   school's shared NAT), still sign in.
# - Per account (issue 14): twenty failures for one username across all addresses lock the account
#   from everywhere, and the school admin and the bureau admin are told in-app.
# Axes has one period, not a separate counting window and lock: a failure counts while its
# address's last failure is under 30 minutes old, and a lock lasts until the failures age out,
# at most 30 minutes after the failure that set it. So five failures within 15 minutes from one
# address, or twenty within 15 minutes from any addresses, always lock. Attempts during the lock
# are refused and audited but do not extend it (the page can then say when it ends). A successful
# login clears the account's count. The bureau admin unlocks on 「锁定账号」 (/accounts/locked/),
# in 管理后台 (Axes › Access attempts) or with `manage.py axes_reset_username <username>`.
LOGIN_FAILURE_LIMIT_PER_ADDRESS = 5
LOGIN_FAILURE_LIMIT_PER_ACCOUNT = 20
AXES_FAILURE_LIMIT = "schools.accounts.failure_limit"
AXES_COOLOFF_TIME = datetime.timedelta(minutes=30)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username"]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "schools.accounts.lockout_response"
# The address the audit log records (REMOTE_ADDR, set by the proxy), never a forgeable header,
# even if django-ipware is ever installed.
AXES_CLIENT_IP_CALLABLE = "schools.services.client_ip"
# Successful logins and logouts are already in the audit log; axes' own copy would grow for ever.
AXES_DISABLE_ACCESS_LOG = True
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]

# Sessions end after 30 minutes without a request and 12 hours after login however active
# (schools.middleware.SessionTimeoutMiddleware, with a message). The idle limit is also the
# stored expiry: SessionTimeoutMiddleware moves it on at most once a minute, where
# SESSION_SAVE_EVERY_REQUEST would write the session row on every request. The cookie itself
# ends with the browser (shared computers in school offices).
SESSION_IDLE_TIMEOUT = datetime.timedelta(minutes=30)
SESSION_ABSOLUTE_TIMEOUT = datetime.timedelta(hours=12)
SESSION_ACTIVITY_RESOLUTION = datetime.timedelta(minutes=1)
SESSION_COOKIE_AGE = int(SESSION_IDLE_TIMEOUT.total_seconds())
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# HTTPS in production (anything with DATABASE_URL); the embedded default serves plain HTTP on a
# laptop. Behind a TLS-terminating proxy, BEHIND_HTTPS_PROXY=1 is needed for the redirect
# (without it every request looks like HTTP and would be redirected for ever); tests that run
# on PostgreSQL over HTTP set SECURE_SSL_REDIRECT=0.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not EMBEDDED)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if EMBEDDED else 365 * 24 * 3600, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Preloading commits the whole registrable domain (e.g. example.gov.cn) to HTTPS in browsers for
# good; that is its owner's decision, so it is opt-in, and the check that asks for it is silenced
# until then.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The statistics' covering index (visit_submitted_by_date) INCLUDEs columns for PostgreSQL;
    # SQLite builds it without them, which is all the embedded default needs. Without this, every
    # command of `make run` printed the warning.
    SILENCED_SYSTEM_CHECKS.append("models.W040")

# Content-Security-Policy (django-csp 4): only this site's own files. No inline script or style
# attribute anywhere (widths set from static JS, JSON data in json_script blocks, which do not run);
# ECharts draws on canvas and needs no eval.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "object-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
    },
}

# --- Privacy ---
# Audit rows are kept at least this many days; `manage.py audit_purge` refuses a more recent date.
AUDIT_RETENTION_DAYS = 180

# --- Faults ---
# A broker that refuses connections or hangs must not hold up a teacher's request: a publish gives
# up after two tries of at most two seconds each (connect, then each reply), and the caller carries
# on — a school's statistics refresh stays marked on the school for the sweep (ledgers.receivers).
# A message whose worker died unacknowledged (acks_late) is handed out again after the visibility
# timeout; it is longer than STATISTICS_RUN_LEASE, so a redelivered nightly run finds the dead
# worker's lease expired and resumes the run.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 2,
    "visibility_timeout": 3600,
}
# Publishing (homevisit.celery.CircuitTask): one bounded try — connecting gives up after
# CELERY_BROKER_CONNECTION_TIMEOUT, each reply after the socket timeout above — and after a
# failure no publish is tried for PUBLISH_CIRCUIT_OPEN_SECONDS, in this process: a request then
# fails its publish at once and carries on (the sweeps find what the message would have said).
CELERY_BROKER_CONNECTION_TIMEOUT = 2
PUBLISH_CIRCUIT_OPEN_SECONDS = env_int("PUBLISH_CIRCUIT_OPEN_SECONDS", 30, minimum=0)
# The worker outlives the broker (Celery 5.x documentation, "Broker Settings" and "Worker"): it
# reconnects for ever (None; 0 would mean never), and a task running when the connection is lost
# is cancelled, so that an acks_late message is redelivered once instead of run twice. It runs
# without gossip, mingle and heartbeat (Makefile, deploy/): one queue needs none of them, and
# they are where the reconnect crashes were (issue 15).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# No refresh message per change: beat's sweep refreshes the schools whose stale mark is older than
# STATISTICS_REFRESH_DELAY, every STATISTICS_SWEEP_INTERVAL (ledgers.receivers); sweeps queued
# while the worker was down find nothing left after the first (one at a time, ledgers.tasks). The
# promise (DESIGN §7, issue 15): a school's figures are never older than STATISTICS_FRESHNESS
# behind its last change while the worker and beat run — window + interval + compute time — and
# the dashboards say when a school's are.
STATISTICS_SWEEP_INTERVAL = datetime.timedelta(seconds=env_int("STATISTICS_SWEEP_SECONDS", 15, minimum=1))
STATISTICS_FRESHNESS = datetime.timedelta(minutes=2)
CELERY_BEAT_SCHEDULE["statistics-refresh-stale"] = {
    "task": "ledgers.tasks.statistics_refresh_stale_sweep",
    "schedule": STATISTICS_SWEEP_INTERVAL.total_seconds(),
}

# --- Health (monitoring/, django-health-check; README 「Production deployment」) ---
# /health/ for the load balancer (the database: 200 or 500, anyone), /health/detail/ for the
# operator (bureau admin). Beat sends the heartbeat task every HEALTH_HEARTBEAT_INTERVAL; a worker
# or beat whose last heartbeat is older than HEALTH_SILENCE_LIMIT is reported unavailable.
INSTALLED_APPS += ["health_check", "monitoring"]
HEALTH_HEARTBEAT_INTERVAL = datetime.timedelta(seconds=env_int("HEALTH_HEARTBEAT_SECONDS", 20, minimum=1))
HEALTH_SILENCE_LIMIT = datetime.timedelta(minutes=1)
CELERY_BEAT_SCHEDULE["health-heartbeat"] = {
    "task": "monitoring.tasks.health_heartbeat",
    "schedule": HEALTH_HEARTBEAT_INTERVAL.total_seconds(),
}
# The load balancer asks gunicorn over plain HTTP: no redirect to HTTPS for it.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
