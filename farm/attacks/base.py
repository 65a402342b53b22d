"""Every attack that scores from the signals alone, by name: the baselines, LiRA, RMIA, InfoRMIA,
quantile regression and their variants (parameters, not copies). ``farm.attacks.registry.ATTACKS``
adds the learned attacks, which stack these. Pure."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from farm.attacks.baselines import in_calibration, loss, reference
from farm.attacks.lira import lira
from farm.attacks.quantile import quantile
from farm.attacks.rmia import RMIA_A_GRID, RMIA_GAMMA_GRID, informia, rmia

Attack = Callable[..., np.ndarray]  # attack(signals, targets, **params) -> scores [T, P]

BASE: dict[str, Attack] = {
    "loss": loss,
    "gradient": functools.partial(loss, statistic="grad_norm"),
    "reference": reference,
    "in_calibration": in_calibration,
    "lira_online": functools.partial(lira, online=True),
    "lira_offline": functools.partial(lira, online=False),
    "lira": lira,
    # LiRA online with what the farm has: IN from the labelled models (~99 per MICO point:
    # per-example variance), OUT from the shadows (pooled variance until a point has 16 OUT
    # shadows).
    "lira_farm": functools.partial(
        lira,
        online=True,
        in_from="labelled",
        out_from="shadows",
        fixed_variance=False,
        min_count=16,
    ),
    "lira_queries": functools.partial(lira, statistic="query_margin"),
    "lira_grad": functools.partial(lira, statistic="grad_norm"),
    "rmia": rmia,
    "rmia_offline": functools.partial(rmia, online=False),
    "rmia_fit": functools.partial(rmia, offline_a=RMIA_A_GRID, gamma=RMIA_GAMMA_GRID),
    # InfoRMIA: RMIA's parts, scored by the mean log2 LR(x) / LR(z) instead of a count over z.
    "informia": informia,
    "informia_offline": functools.partial(informia, online=False),
    # Quantile regression (Bertran et al. 2023): the non-member quantile per record, no shadows.
    "quantile": quantile,
}
