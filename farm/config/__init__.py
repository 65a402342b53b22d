"""YAML at the edge (effects): one loader per config kind -- ``challenge`` (make-challenge),
``attack``, ``tune`` -- plus ``recipes`` (recipes and defences by name, path or mapping) and
``loading`` (the shared reading, names and errors). The shipped files live in ``shipped/<kind>/``.
"""
