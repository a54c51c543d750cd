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
