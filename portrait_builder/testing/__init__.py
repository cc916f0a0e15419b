"""Support code for the tests, the benchmarks and the screenshots script, never for the library.

Nothing in the pipeline imports it: sample projects with real JPEG crops
(:mod:`.annotation_sample` for the annotation app, :mod:`.stats_sample` for the dataset stages),
reference implementations the library's metrics are checked against (:mod:`.reid_reference`) and the
benchmarks' resident-memory sampler (:mod:`.memory`). It is
shipped with the package so that benchmarks and scripts outside ``tests/`` can import it too. It is
not a pytest plugin: the fixtures that use it live in the ``conftest.py`` of each test folder.
"""
