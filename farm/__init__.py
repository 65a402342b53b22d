"""farm: a Ray-based shadow-model farm for membership-inference attacks.

The packages, by ring (each may import its own ring and those above it in this list;
``tests/test_layering.py`` enforces it, ``docs/design.md`` says why):

- pure core (numpy): ``mico``, ``privacy``, ``spec``, ``attacks``, ``defences``, ``errors``,
  ``stopwatch``;
- effects (files, torch): ``challenge``, ``store``, ``config``, ``shadows``, ``report``, and
  ``training``, the only package that imports torch;
- Ray: ``cluster``, the only package that imports Ray;
- top: ``commands`` (the body of each command) and ``cli``.

Importing ``farm`` pulls in neither torch nor Ray; those load only in the modules that need them.
"""

__version__ = "0.1.0"
