"""Settings for the HTTP benchmarks: the project's own settings, plus a bare view.

`ROOT_URLCONF` adds `/bench/bare/` (see `bench/urls.py`) to the project's URLs, so the
bare view and the market are served by the same gunicorn, middleware and database.
Static files are collected into `BENCH_STATIC_ROOT` (a throwaway directory) so pages
render with `DEBUG=False` and the manifest storage, as in production.
"""

import os
from pathlib import Path

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
STATIC_ROOT = Path(os.environ.get("BENCH_STATIC_ROOT", "/tmp/carbon-bench-static"))
