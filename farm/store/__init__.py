"""Where results live (effects): ``store`` (a content-addressed store on a folder or any fsspec
URI), ``atomic`` (whole-file writes), ``run_job`` (one job, run idempotently against a store) and
``runner`` (the ``JobRunner`` seam every command runs jobs through, and its ``RunReport``).
"""
