"""The body of each command (top ring; ``farm.cli`` parses arguments and calls these):
``make_challenge``, ``attack``, ``tune``, ``audit`` (``farm audit``'s recipe mode) and ``dry_run``
(``farm plan`` and ``--dry-run``).
"""
