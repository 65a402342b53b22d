"""What an epsilon rests on: the neighbouring datasets it is for and the accountant and sampling
behind it. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from farm.errors import require

ADJACENCIES = ("add/remove", "substitution")  # what "neighbouring datasets" means for an epsilon


def assumptions(*, accountant: str, sampling: str | None, adjacency: str) -> dict[str, str]:
    """What an epsilon rests on, recorded beside it wherever it is written (``challenge.json``,
    ``metrics.json``, the report, the defence table, ``farm plan``): ``accountant`` (``prv``,
    ``rdp``, ``gdp``, ``pate-rdp``, ``randomized-response``, ...), ``sampling`` (``poisson``,
    ``shuffle`` or None where nothing is subsampled), ``adjacency`` (``ADJACENCIES``) and
    ``assumes``, one readable line. A DP-SGD run on shuffled fixed-size batches is accounted as if
    Poisson-sampled, which is not a proof for the run (Chua et al. 2024), and the line says so.

    >>> assumptions(accountant="prv", sampling="shuffle", adjacency="add/remove")["assumes"]
    'as accounted for Poisson sampling; the run used shuffled batches (prv accountant, add/rem...'
    >>> assumptions(accountant="prv", sampling="poisson", adjacency="add/remove")["assumes"]
    'prv accountant, Poisson sampling, add/remove adjacency'
    """
    require(adjacency in ADJACENCIES, "adjacency", " or ".join(ADJACENCIES), adjacency)
    require(
        sampling in (None, "poisson", "shuffle"), "sampling", "poisson, shuffle or null", sampling
    )
    if sampling == "shuffle":
        line = (
            f"as accounted for Poisson sampling; the run used shuffled batches ({accountant} "
            f"accountant, {adjacency} adjacency)"
        )
    elif sampling == "poisson":
        line = f"{accountant} accountant, Poisson sampling, {adjacency} adjacency"
    else:
        line = f"{accountant} accountant, {adjacency} adjacency"
    return {
        "accountant": accountant,
        "sampling": sampling or "none",
        "adjacency": adjacency,
        "assumes": line,
    }


def describe_epsilon(privacy: Mapping[str, Any]) -> str:
    """A privacy record (``Defence.privacy()`` / ``recipe_privacy``) as one table cell: the epsilon
    and what it assumes, e.g. ``10 (as accounted for Poisson sampling; ...)``; ``inf`` without DP; a
    record written before assumptions were recorded says so.

    >>> describe_epsilon({"epsilon": "inf"})
    'inf'
    """
    eps = privacy.get("epsilon")
    if eps is None or eps == "inf":
        return "inf" if eps == "inf" else "unknown"
    text = f"{float(eps):.3g}"
    return (
        f"{text} ({privacy['assumes']})"
        if privacy.get("assumes")
        else f"{text} (assumptions not recorded)"
    )
