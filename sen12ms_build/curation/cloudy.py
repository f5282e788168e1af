"""The cloud-removal variants' checks of a cloudy input patch: real defects only.

A cloudy patch is kept for its clouds; the rounds of :mod:`.rounds` (residual cloud,
shadow, haze, seams) judge the cloud-free target, never the input. The input is rejected
only for what would make it no real acquisition:

* ``cloudy_nodata``: pixels without data (:func:`.rounds.nodata_share`, 0 in every band);
* ``cloudy_saturated``: saturated or impossible values (:func:`.rounds.saturated_share`,
  DN >= 20000; even the brightest cloud tops stay below it in L1C);
* ``cloudy_stripe``: band dropouts: runs of at least :data:`.rounds.STRIPE_RUN` pixels along
  a row or a column where a band other than B10 is 0 while the pixel has data in others
  (a lost detector line or packet; B10, the cirrus band, is legitimately 0 over dark
  water).

The values are recorded in ``manifest.csv`` with the deciding check as the reason
(``cloudy_<check>``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..products import S2_BANDS
from .rounds import STRIPE_RUN, _flat_runs, nodata_share, saturated_share

#: The checks in order, with their ``cloud_removal.max_<key>`` threshold keys.
CHECKS: tuple[tuple[str, str], ...] = (("cloudy_nodata", "max_nodata_share"),
                                       ("cloudy_saturated", "max_saturated_share"),
                                       ("cloudy_stripe", "max_stripe_share"))
#: Bands whose 0 counts as a dropout (all but the cirrus band B10).
DROPOUT_BANDS = tuple(i for i, b in enumerate(S2_BANDS) if b != "B10")


def stripe_share(s2: np.ndarray) -> float:
    """Share of valid pixels of a (13, H, W) L1C array inside band dropouts (see the module
    doc); 0.0 without valid pixels."""
    valid = np.any(s2 != 0, axis=0)
    n = int(valid.sum())
    if n == 0:
        return 0.0
    drop = np.zeros(valid.shape, bool)
    for b in DROPOUT_BANDS:
        drop |= s2[b] == 0
    drop &= valid
    if not drop.any():
        return 0.0
    # a run of k dropped pixels is k - 1 "flat" neighbour pairs in a row
    pairs_r = drop[:, 1:] & drop[:, :-1]
    pairs_c = (drop[1:, :] & drop[:-1, :]).T
    stripe = _flat_runs(pairs_r, STRIPE_RUN) | _flat_runs(pairs_c, STRIPE_RUN).T
    return float((stripe & valid).sum()) / n


def measure(s2_cloudy: np.ndarray) -> dict[str, float]:
    """Every check's value of one (13, H, W) cloudy patch, rounded to 1e-6."""
    return {"cloudy_nodata": round(nodata_share("s2", s2_cloudy), 6),
            "cloudy_saturated": round(saturated_share(s2_cloudy), 6),
            "cloudy_stripe": round(stripe_share(s2_cloudy), 6)}


def decide(values: Mapping[str, float], settings: Any) -> tuple[bool, str]:
    """(keep, deciding check): the first check whose value exceeds its threshold
    (``settings``: :class:`sen12ms_build.config.CloudRemovalConfig`) rejects."""
    for name, key in CHECKS:
        if name in values and values[name] > float(getattr(settings, key)):
            return False, name
    return True, ""
