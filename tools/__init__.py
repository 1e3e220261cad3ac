"""Programs that measure or show the library, each run with ``python -m tools.<name>``.

They sit apart from ``common/`` (what every chapter imports) because they are programs with a
``main`` of their own and may use any chapter: ``viewer`` draws an episode of a data set into a
PNG, ``benchmark_sampler`` times the episode sampler and the framework adapters, and
``benchmark_allocator`` times training episodes with glibc's default allocator against
``common/allocator.py``'s settings; the benchmarks write their measurements to
``results/benchmarks/``.
"""
