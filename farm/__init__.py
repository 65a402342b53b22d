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

import importlib

__version__ = "0.1.0"

# The array API, loaded on first use (``farm.Signals`` imports numpy, never torch or Ray):
#   signals = farm.Signals(logits=..., labels=..., keep=..., challenge=..., labelled=...)
#   scores = farm.run_attack("rmia", signals, targets)        # [T, P], higher = member
#   farm.score(solutions, predictions)["TPR_FPR_1000"]        # MICO's TPR at FPR < 0.1%
# README.md ("Python API") walks through it.
_EXPORTS = {
    "Signals": "farm.attacks.signals",
    "run_attack": "farm.attacks.registry",
    "ATTACKS": "farm.attacks.registry",
    "needs": "farm.attacks.registry",
    "score": "farm.mico.scorer",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> object:
    """``farm.<name>`` for the names of ``_EXPORTS``, imported from their module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'farm' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
