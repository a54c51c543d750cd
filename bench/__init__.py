"""Benchmarks and the soak. Each script is one command; see docs/benchmarks.md."""
