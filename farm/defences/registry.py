"""The defences a make-challenge config may name, by the word of their YAML's ``defence:`` key.
Pure."""

from __future__ import annotations

from farm.defences.pate import Pate
from farm.defences.sisa import Sisa


def registry() -> dict[str, type]:
    """``{word of the YAML's defence: key: defence config class}``."""
    return {"sisa": Sisa, "pate": Pate}
