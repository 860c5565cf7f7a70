"""Pure protocol core for CodeArts Check: no sockets, no sleeps, no Airflow.

Everything that decides *what* to send and *what a reply means* lives here, once. The transports in
``airflow_provider_codecheck.transport`` only move bytes and wait, so the worker (requests) and the triggerer
(aiohttp) behave identically.
"""
