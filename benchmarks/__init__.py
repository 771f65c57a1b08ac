"""Benchmarks: ``python -m benchmarks [names...]`` prints one JSON line per result (see ``__main__``)."""
