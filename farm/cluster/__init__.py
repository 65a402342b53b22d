"""Ray, and only here: ``executor`` (long-lived workers fed by one queue), ``queue`` (its pure
dependency bookkeeping, tested without Ray), ``progress`` (its pure progress model: done/total,
rate, time left) and ``tune`` (the Ray half of ``farm tune``).
"""
