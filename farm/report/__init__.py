"""What an attack found, written down (effects): ``results`` (the per-scenario result types),
``attack_report`` (``report.md``, ``metrics.json``, ``scores.parquet``) and ``plots``.
"""
