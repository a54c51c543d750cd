"""Settings for the carbon cash market, read from the environment (django-environ).

Every variable is documented in `.env.example`. SQLite is the embedded default;
production runs on PostgreSQL through DATABASE_URL.
"""

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
    "django.contrib.admin",
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
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so two writers never deadlock on upgrade
    # from a read lock; that is SQLite's stand-in for row locks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # Parameters are bound server-side (psycopg's own cursors, not merged into the SQL
    # text), which the hot paths' set-based writes need (market/db/), and a statement is
    # prepared on a connection after DB_PREPARE_THRESHOLD runs. 0 turns preparing off, which
    # a transaction-mode connection pooler without prepared-statement support needs.
    prepare_threshold = env.int("DB_PREPARE_THRESHOLD", default=5)
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options.setdefault("server_side_binding", True)
    options.setdefault("prepare_threshold", prepare_threshold or None)

# On PostgreSQL each web process listens for book and session changes (market/live.py), so
# the order-book poll answers from memory. Off, or on SQLite, polls read the database.
MARKET_LIVE_FEED = env.bool("MARKET_LIVE_FEED", default=True)

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
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "market",
    }
}

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
# Cookies travel over HTTPS only exactly when the site is served over HTTPS (production:
# SECURE_SSL_REDIRECT=True, which `check --deploy` asks for). `make run` serves plain HTTP
# on 127.0.0.1 with DEBUG=False, and its login must still work.
SESSION_COOKIE_SECURE = SECURE_SSL_REDIRECT
CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT
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
