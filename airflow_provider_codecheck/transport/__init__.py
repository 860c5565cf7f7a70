"""Thin transports that drive the core's flows: ``sync`` (requests, worker) and ``aio`` (aiohttp, triggerer).

``aio`` is imported only by triggers, never at DAG-parse time.
"""
