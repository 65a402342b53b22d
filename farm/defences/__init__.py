"""Defences that stand in for a scenario's target recipe (pure): ``seam`` (``TargetSpec`` in,
``TargetBuild`` out: the keyed jobs of one released model), ``sisa``, ``pate`` (the defence's
jobs; its mechanism is ``farm.privacy.pate``) and ``registry`` (by the YAML's ``defence:`` word).
"""
