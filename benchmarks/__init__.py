"""On-demand benchmarks (not part of the test suite): `python -m benchmarks.quality`, `python -m benchmarks.throughput`."""
