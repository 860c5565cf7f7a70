"""Benchmarks of the CodeArts Check provider: ``make bench`` (``python -m benchmarks.run``) writes BENCHMARKS.md.

* ``benchmarks.scale``: thousands of concurrent trigger waits in one event loop, ours beside two baselines.
* ``benchmarks.parse_time``: import cost of the operator and sensor modules over ``airflow.sdk``.
* ``benchmarks.poke``: poke-mode sensor, IAM calls and TCP connections over 100 pokes.
* ``benchmarks.emulator_load``: standalone load check of the emulator itself.
"""
