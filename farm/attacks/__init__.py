"""Membership attacks and how their numbers are reported (pure numpy).

Every attack is ``attack(signals, targets, **params) -> scores [T, P]``, higher = member, no
target ever its own reference: ``signals`` (the ``Signals`` record), ``references`` (which
models are a target's references), ``baselines``, ``lira``, ``rmia`` (and InfoRMIA),
``quantile``, ``learned``; ``base`` and ``registry`` name them (``ATTACKS``, ``run_attack``).
``intervals`` (bootstraps over models), ``protocol`` (choose on labelled models, compare paired),
``audit`` (empirical epsilon over models), ``one_run`` and ``multi_run`` (canary audits over one
or many runs; ``canaries`` makes the canaries) turn scores into numbers people can trust.
"""
