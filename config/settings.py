"""Settings for the carbon cash market, read from the environment (django-environ).

Every variable is documented in `.env.example`. SQLite is the embedded default;
production runs on PostgreSQL through DATABASE_URL.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env(
    DEBUG=(bool, False),
    SECURE_SSL_REDIRECT=(bool, False),
    SECURE_HSTS_SECONDS=(int, 0),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost"]),
    CSRF_TRUSTED_ORIGINS=(list, []),
)
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# DEBUG shows tracebacks, settings and URL lists on error pages: `make dev` only, never
# `make run` or production.
DEBUG = env("DEBUG")
# The demo's shortcuts (seed_demo's well-known logins admin/admin, trader/trader): on in
# .env.example for `make run`, off unless asked for, and independent of DEBUG.
DEMO = env.bool("DEMO", default=False)
SECRET_KEY = env(
    "SECRET_KEY",
    default="django-insecure-local-development-key-change-me"
    if DEBUG or DEMO
    else environ.Env.NOTSET,
)
ALLOWED_HOSTS = env("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # The admin site with the staff second factor and the lockout on its login (config/admin.py).
    "config.apps.BackOfficeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "ninja",
    "template_partials",
    "tailwind",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "config",
    "config.theme",
    "accounts",
    "market",
    "liquidity",
    "demo",
]

MIDDLEWARE = [
    # First, so that every response has the policy, the HTTPS redirect included.
    "config.middleware.ContentSecurityPolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads the query string or the form (sessions, CSRF, views).
    "config.middleware.RejectHostileInputMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Inside WhiteNoise (static files never reach it) and after authentication.
    "config.middleware.PrivateResponsesNotStoredMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the 429 login page.
    "axes.middleware.AxesMiddleware",
]

# django-axes first: it refuses a locked-out login before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"

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
                "config.navigation.backoffice_links",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": env.db(
        "DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
    )
}
# DATABASE_URL reaches PostgreSQL through a transaction-mode connection pooler (PgBouncer
# with pool_mode = transaction): consecutive transactions of one connection may run on
# different server sessions, so nothing may outlive a transaction. Then statements are not
# prepared (unless DB_PREPARE_THRESHOLD says otherwise), querysets are not streamed through
# server-side cursors (Django's `.iterator()` would declare WITH HOLD cursors), and the
# live feed listens only on MARKET_LIVE_FEED_DATABASE_URL (below).
DB_TRANSACTION_POOLER = env.bool("DB_TRANSACTION_POOLER", default=False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The book index's INCLUDE columns (market.Order) serve PostgreSQL's index-only scans;
    # SQLite builds the plain partial index, which is all it needs, so its warning is noise.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
    # IMMEDIATE takes the write lock at BEGIN, so two writers never deadlock on upgrade
    # from a read lock; that is SQLite's stand-in for row locks.
    # WAL: the web server's reads do not wait for the liquidity worker's writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # Parameters are bound server-side (psycopg's own cursors, not merged into the SQL
    # text), which the hot paths' set-based writes need (market/db/), and a statement is
    # prepared on a connection after DB_PREPARE_THRESHOLD runs. 0 turns preparing off, which
    # a transaction-mode connection pooler without prepared-statement support needs (the
    # default there). Unnamed statements, bound server-side, work through such a pooler.
    prepare_threshold = env.int("DB_PREPARE_THRESHOLD", default=0 if DB_TRANSACTION_POOLER else 5)
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options.setdefault("server_side_binding", True)
    options.setdefault("prepare_threshold", prepare_threshold or None)
    if DB_TRANSACTION_POOLER:
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True

# On PostgreSQL each web process listens for book and session changes (market/live.py), so
# the order-book poll answers from memory. Off, or on SQLite, polls read the database.
MARKET_LIVE_FEED = env.bool("MARKET_LIVE_FEED", default=True)
# Where the feed's LISTEN connection goes, when not to DATABASE_URL: a direct URL to the
# same PostgreSQL database, past a transaction-mode pooler (LISTEN needs a session of its
# own). Unset, the feed listens on DATABASE_URL, or, with DB_TRANSACTION_POOLER, stays off
# and polls read the database.
MARKET_LIVE_FEED_DATABASE_URL = env.str("MARKET_LIVE_FEED_DATABASE_URL", default="")
MARKET_LIVE_FEED_DATABASE = (
    environ.Env.db_url_config(MARKET_LIVE_FEED_DATABASE_URL)
    if MARKET_LIVE_FEED_DATABASE_URL
    else None
)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
USE_THOUSAND_SEPARATOR = False

# Mail (password reset). EMAIL_URL like smtp+tls://user:password@smtp.example.com:587;
# the default writes mails to the log instead of failing to reach an SMTP server.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
# Seconds before a mail server that does not answer is given up (the liquidity worker
# mails alerts; a hung server must not hold it).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Carbon Cash Market <noreply@localhost>")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

TAILWIND_APP_NAME = "config.theme"
NPM_BIN_PATH = env("NPM_BIN_PATH", default="npm")

CACHES = {
    # Per process: small entries (a trader's own price levels, by book version, so dead
    # once the book changes): a thousand cover the traders polling at once; past that a
    # poll reads its own levels again (three queries), never anything stale.
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "market",
        "OPTIONS": {"MAX_ENTRIES": 1_000},
    },
    # Per process: the order book and its rendered poll bodies (up to ~150 KB each), keyed
    # by book version, so an entry is dead once its book changes. The live ones are a few
    # per market watched (book, fragments, poll body per depth and grouping in use; a
    # chart per interval): 32 hold those of a few markets, and bound each worker's memory
    # for them at ~5 MB (128 took ~20 MB, which a worker kept filling for minutes as the
    # bodies grew with the book: bench/memory.py read that as growth). Raise it with the
    # number of markets traded at once; a culled entry is only rendered again.
    "book": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "book",
        "OPTIONS": {"MAX_ENTRIES": 32},
    },
    # The request counters of config/throttle.py, shared by every gunicorn process and host
    # (a table in the database: `manage.py createcachetable`, which `make migrate` runs).
    "throttle": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "throttle_cache",
        # Past MAX_ENTRIES rows a write first deletes the expired ones, then culls live
        # ones too: Django's default of 300 would drop live counters (and let a user over
        # the limit through) with a few hundred active users. Counters of past windows
        # expire within minutes, so this many rows are never all live.
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    },
}

# --- Sign-in lockout (django-axes) --------------------------------------------------------
# AXES_FAILURE_LIMIT wrong passwords in a row for one username from one address lock that
# username from that address for AXES_COOLOFF_MINUTES, on the site's login and the
# admin's alike; a right password is refused too while it lasts. Only the guessed account
# is locked: other users behind the same address still sign in, and nobody can lock a
# trader out from elsewhere. The address is the peer's (REMOTE_ADDR), as on audit tickets.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429

# --- Request throttling (config/throttle.py) ----------------------------------------------
# Requests per user and window, "COUNT/s", "COUNT/m" or "COUNT/h". An active trader, the
# demo and the README's walk-through stay far below them; a script gone wild does not.
RATE_LIMITS_ENABLED = env.bool("RATE_LIMITS_ENABLED", default=True)
RATE_LIMITS = {
    "order_place": env("RATE_LIMIT_ORDER_PLACE", default="120/m"),
    "order_cancel": env("RATE_LIMIT_ORDER_CANCEL", default="120/m"),
    "api": env("RATE_LIMIT_API", default="600/m"),
}

# --- Two-factor sign-in (django-otp) ------------------------------------------------------
# Staff pass a TOTP code (or a recovery code) before the admin, the back office, the API by
# session and token creation. Required unless the demo is on (`make run`).
STAFF_2FA_REQUIRED = env.bool("STAFF_2FA_REQUIRED", default=not DEMO)
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="Carbon Cash Market")
# The admin lists and removes devices (a lost phone) but never shows a key, QR code or
# recovery code: only their owner sees those, once.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# Security headers. HSTS and the SSL redirect only make sense behind HTTPS, so they
# are switched on from the environment in production.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env("SECURE_SSL_REDIRECT")
SECURE_HSTS_SECONDS = env("SECURE_HSTS_SECONDS")
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Cookies travel over HTTPS only, unless the demo runs: `make run` serves plain HTTP on
# 127.0.0.1 with DEBUG=False, and its login must still work. Production behind a TLS proxy
# that redirects to HTTPS itself (SECURE_SSL_REDIRECT off) still sends secure cookies.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=SECURE_SSL_REDIRECT or not DEMO)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=SECURE_SSL_REDIRECT or not DEMO)
SESSION_COOKIE_HTTPONLY = True

# Sent on every response by config.middleware. Scripts only from our own files: no inline
# <script>, no eval (htmx runs with allowEval: false). Inline style attributes stay
# allowed (depth bars, SVG), as do data: images (the favicon).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
