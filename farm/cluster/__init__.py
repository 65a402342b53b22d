"""Ray, and only here: ``executor`` (long-lived workers fed by one queue), ``queue`` (its pure
dependency bookkeeping, tested without Ray) and ``tune`` (the Ray half of ``farm tune``).
"""
