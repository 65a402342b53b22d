"""Shadow models (effects): ``plans`` (pure: which reference models a scenario needs) and
``scenario``, the seam between a challenge tree and the attacks (load a scenario, plan its
shadows, collect its signals through a ``JobRunner``).
"""
