"""Benchmarks behind BENCHMARKS.md: `xiaoai bench video|image|mp4|queue` and the GPU matrix script."""
