"""The body of each command (top ring; ``farm.cli`` parses arguments and calls these):
``make_challenge``, ``attack``, ``tune`` and ``dry_run`` (``farm plan`` and ``--dry-run``).
"""
