"""Settings for the test suite: the real settings, with a fixed key and a fast hasher."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("DEBUG", "False")
# Not from a developer's .env: the demo shortcuts are off unless a test switches them on.
os.environ.setdefault("DEMO", "False")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Most tests run inside a transaction that never commits, which a LISTEN connection cannot
# see; the live feed's own tests switch it on with committed data (market/tests/test_live.py).
MARKET_LIVE_FEED = False

# Request counting off by default, so no test trips a limit by accident; the throttle's own
# tests switch it on (config/tests/test_throttle.py, the permission matrix's 429 rows).
RATE_LIMITS_ENABLED = False
# Staff pass with a password alone unless a test requires the second factor
# (accounts/tests/); the sign-in lockout stays on, as in production.
STAFF_2FA_REQUIRED = False
# django-axes logs every sign-in at INFO; the suite signs in thousands of times.
LOGGING = {**LOGGING, "loggers": {"axes": {"level": "WARNING"}}}  # noqa: F405
