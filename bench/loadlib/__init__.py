"""Helpers of ``bench/load.py``: the server under test, account setup, engine-driven peers,
worker processes and statistics. Each module holds one of those."""
