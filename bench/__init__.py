"""Benchmarks for the generators (issue 8): `xiaoai bench video` and `xiaoai bench mp4`."""
