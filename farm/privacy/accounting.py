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


# label-DP mechanisms (``farm.spec.recipes.LabelNoise``): how each releases a record's label
LABEL_MECHANISMS = {
    "randomized_response": "randomized response, each label flipped at most once",
    "alibi": "ALIBI, Laplace noise on the one-hot label drawn once per record",
}


def label_dp_assumes(privacy: Mapping[str, Any]) -> str:
    """What a label-DP epsilon (a record's ``label_epsilon``) rests on, one readable line: the
    mechanism (a record without one is randomized response, the first), pure DP (delta 0) for
    neighbouring datasets that differ in one record's label, and that it protects labels only.

    >>> label_dp_assumes({"label_epsilon": 1.0, "mechanism": "alibi"})  # doctest: +ELLIPSIS
    'ALIBI, Laplace noise on the one-hot label drawn once per record; pure (delta 0), neighbo...'
    """
    mechanism = privacy.get("mechanism", "randomized_response")
    how = LABEL_MECHANISMS.get(mechanism, mechanism)
    return f"{how}; pure (delta 0), neighbours differ in the label of one record; labels only"


def describe_epsilon(privacy: Mapping[str, Any]) -> str:
    """A privacy record (``Defence.privacy()`` / ``recipe_privacy``) as one table cell: the epsilon
    and what it assumes, e.g. ``10 (as accounted for Poisson sampling; ...)``; ``inf`` without DP; a
    record written before assumptions were recorded says so. A record with a label-DP epsilon
    (``label_epsilon``: randomized response, ALIBI) adds it with what it assumes
    (``label_dp_assumes``) after the record-level one, which it does not change.

    >>> describe_epsilon({"epsilon": "inf"})
    'inf'
    >>> alibi = {"epsilon": "inf", "label_epsilon": 1.0, "mechanism": "alibi"}
    >>> describe_epsilon(alibi)  # doctest: +ELLIPSIS
    'inf; label-DP 1 (ALIBI, Laplace noise on the one-hot label drawn once per record; pure ...)'
    """
    text = _record_epsilon(privacy)
    if privacy.get("label_epsilon") is None:
        return text
    return f"{text}; label-DP {float(privacy['label_epsilon']):.3g} ({label_dp_assumes(privacy)})"


def _record_epsilon(privacy: Mapping[str, Any]) -> str:
    eps = privacy.get("epsilon")
    if eps is None or eps == "inf":
        return "inf" if eps == "inf" else "unknown"
    text = f"{float(eps):.3g}"
    return (
        f"{text} ({privacy['assumes']})"
        if privacy.get("assumes")
        else f"{text} (assumptions not recorded)"
    )
