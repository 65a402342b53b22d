"""The label-memorization attack (Malek et al. 2021, "Antipodes of Label Differential Privacy"),
in the pairwise form binary labels allow. Pure.

The paper flips the labels of canaries to a random other class and counts how many of those wrong
labels the trained model outputs. With two classes the "other class" is fixed, so the farm uses
the pairwise design (``relabelled`` canaries, ``farm.attacks.canaries``): each canary trains under
its own label or under the flipped one by a fair coin, and the model's output on the canary's text
is the attacker's guess of the coin. Three rates, from one trained model:

* ``trained_flipped``: canaries trained with the flipped label whose flipped label the model
  outputs (what the paper counts: memorized wrong labels);
* ``trained_own``: canaries trained with their own label for which it outputs the flipped one;
* ``unseen``: held-out records (not trained on, same distribution) for which it outputs the wrong
  label -- the rate a model trained without the canaries would show on them.

Under epsilon-label-DP, the guess "flipped iff the model outputs it" is right with probability at
most ``e^eps / (1 + e^eps)`` on each canary, so in expectation ``trained_flipped - trained_own``
is at most ``tanh(eps / 2)`` (plus delta terms): that gap is the DP-relevant one. ``excess``
(against ``unseen``) is descriptive: DP says nothing about it. The bound itself comes from
``farm.attacks.one_run`` on the same coins (scores: the log-probability of the flipped label),
which allows for its sampling error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from farm.errors import require


@dataclass(frozen=True, kw_only=True)
class Memorization:
    """The three rates of one model (see the module docstring) and the counts behind them."""

    trained_flipped: float
    trained_own: float
    unseen: float
    n_flipped: int
    n_own: int
    n_unseen: int

    @property
    def excess(self) -> float:
        """``trained_flipped - unseen``: wrong labels output beyond what unseen text gets."""
        return self.trained_flipped - self.unseen


def label_memorization(
    *,
    flipped_predicted: np.ndarray,
    coins: np.ndarray,
    unseen_wrong: np.ndarray,
) -> Memorization:
    """``flipped_predicted [canaries]``: whether the model outputs a canary's flipped label;
    ``coins [canaries]``: 1 when it trained with the flipped label; ``unseen_wrong [records]``:
    whether it outputs the wrong label of each held-out record.

    >>> m = label_memorization(
    ...     flipped_predicted=np.array([1, 1, 0, 0]), coins=np.array([1, 1, 1, 0]),
    ...     unseen_wrong=np.array([0, 1, 0, 0]))
    >>> (round(m.trained_flipped, 3), m.trained_own, m.unseen)
    (0.667, 0.0, 0.25)
    """
    predicted, coins = np.asarray(flipped_predicted, bool), np.asarray(coins)
    unseen = np.asarray(unseen_wrong, bool)
    require(predicted.shape == coins.shape, "coins", "one coin per canary", coins.shape)
    require(bool(np.isin(coins, (0, 1)).all()), "coins", "0/1 per canary")
    flipped, own = predicted[coins == 1], predicted[coins == 0]
    return Memorization(
        trained_flipped=float(flipped.mean()) if flipped.size else float("nan"),
        trained_own=float(own.mean()) if own.size else float("nan"),
        unseen=float(unseen.mean()) if unseen.size else float("nan"),
        n_flipped=int(flipped.size),
        n_own=int(own.size),
        n_unseen=int(unseen.size),
    )
