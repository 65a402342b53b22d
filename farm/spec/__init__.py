"""Frozen, validated options and job specs with content keys (pure): ``recipes`` (model, DP and
training options; ``canonical_key``), ``coerce`` (YAML-shaped data to those dataclasses),
``population`` (where records come from, keyed by the mapping it was read from), ``jobs``
(tokenizer, training, inference and vote jobs, keyed by what they compute), ``queries``
(several queries per record) and ``costs`` (what a run will cost).
"""
