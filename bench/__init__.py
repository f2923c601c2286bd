"""Benchmarks run against real server processes (see docs/benchmarks.md)."""
