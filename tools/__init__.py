"""Programs that measure or show the library, each run with ``python -m tools.<name>``.

They sit apart from ``common/`` (what every chapter imports) because they are programs with a
``main`` of their own and may use any chapter: ``benchmark_sampler`` times the episode sampler and
the framework adapters, ``benchmark_allocator`` times training episodes with glibc's default
allocator against ``common/allocator.py``'s settings. Each writes its measurements to
``results/benchmarks/``.
"""
