"""Benchmarks and the soak (issue 6). Each script is one command; see docs/benchmarks.md."""
