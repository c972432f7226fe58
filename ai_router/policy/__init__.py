"""Resilience policy: retry decisions, target ordering, cooldowns and per-target statistics.

Each module is small and tested alone; `policy/executor.py` composes them around one call.
"""
