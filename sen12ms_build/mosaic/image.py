"""One acquisition's scores on the mosaic grid (:func:`score_image`): the cloud score of the
configured scorer (:mod:`sen12ms_build.mosaic.scorers`), the shadow and quality scores, all
computed at the algorithm's 20 m and expanded back to the grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import scorers
from .params import DEFAULT_PARAMS, MosaicParams
from .scores import (_block_mean, _block_mean_exact, _cloud_score, _cloudy_percentage,
                     _expand_masked, _quality_score, _shadow_score, cloud_mask,
                     cloud_shadow_masks, cloudy_percentage, footprint, poor_mask,
                     roi_coverage_percent, score_factor)



@dataclass
class ScoredImage:
    """Scores of one acquisition on the mosaic grid (all (H, W)).

    ``cloud``/``shadow``/``quality`` float32, ``valid``/``poor`` bool; the percentages are
    over the ROI mask given to :func:`score_image`. ``masks``: the quality layers' (cloud,
    shadow) bool masks (:func:`cloud_shadow_masks`), when asked for.
    """

    cloud: np.ndarray | None
    shadow: np.ndarray | None
    quality: np.ndarray
    valid: np.ndarray
    poor: np.ndarray
    cloudy_percentage: float
    roi_coverage_percent: float
    meta: dict[str, Any] = field(default_factory=dict)
    masks: tuple[np.ndarray, np.ndarray] | None = None


def score_image(l1c: np.ndarray, pixel_size: tuple[float, float], solar_azimuth: float,
                solar_zenith: float, roi: np.ndarray | None = None,
                params: MosaicParams = DEFAULT_PARAMS,
                components: bool = True, masks: bool = False) -> ScoredImage:
    """Quality score module for one (13, H, W) uint16 image at ``pixel_size`` metres.

    Scores are computed at ``score_scale_m`` (block means of ``score_factor`` pixels) and
    expanded back to (H, W) with nearest neighbour, as the Earth Engine scripts compute
    them at 20 m and apply them at 10 m. The cloud score is ``params.scorer``'s
    (:mod:`sen12ms_build.mosaic.scorers`); shadows are projected from it with the paper's solar
    geometry unless the scorer already includes them. With ``components=False`` the cloud
    and shadow scores are not kept (``None``): what the merge needs is quality, valid and
    poor. ``masks=True`` adds the quality layers' cloud and shadow masks
    (:func:`cloud_shadow_masks`, thresholded at the score scale and then expanded: per pixel,
    the same masks as thresholding the expanded scores).
    """
    f = score_factor(pixel_size, params)
    if f != 1 and f * f * 65535 < 2**24 and l1c.dtype.kind in "ui" and l1c.shape[0] > 1:
        valid = np.empty(l1c.shape[1:], bool)  # filled with footprint(l1c) as it goes
        small = _block_mean_exact(l1c, f, valid, fill_valid=True)
    else:
        valid = footprint(l1c)
        small = _block_mean(l1c, f, valid)
    spx = (pixel_size[0] * f, pixel_size[1] * f)
    valid_s = valid if f == 1 else footprint(small)
    cache: dict = {}  # the focal means' weights, shared by the cloud and quality scores
    if params.scorer == "paper":  # the published scripts' path (the same bits)
        cloud_s = _cloud_score(small, valid_s, params, cache)
    else:
        cloud_s = scorers.local_score(params.scorer, small, valid_s, params)
    if scorers.get(params.scorer).includes_shadow:  # as the registry declares (and EE reads)
        shadow_s = np.zeros_like(cloud_s)
    else:
        shadow_s = _shadow_score(small, valid_s, cloud_s, spx, solar_azimuth, solar_zenith,
                                 params)
    quality_s = _quality_score(cloud_s, shadow_s, valid_s, params, cache)
    del small, cache
    invalid = ~valid

    def full(x: np.ndarray, dtype: type, fill: Any) -> np.ndarray:
        """``where(valid, expand(x), fill)`` as ``dtype``, on the (H, W) grid."""
        return _expand_masked(x, f, invalid, dtype, fill)

    if components:
        cloud = full(cloud_s, np.float32, np.float32(0))
        pct = cloudy_percentage(cloud, valid, roi, params)
        shadow = full(shadow_s, np.float32, np.float32(0))
    else:  # only inside the footprint counts: the expanded cloud mask is enough
        cloud = shadow = None
        pct = _cloudy_percentage(full(cloud_mask(cloud_s, params), bool, False), valid, roi)
    quality = full(quality_s, np.float32, np.float32(-np.inf))
    # poor_mask is per pixel and False where quality is -inf (outside the footprint)
    poor = full(poor_mask(quality_s, params), bool, False)
    cs = None
    if masks:  # thresholds are per pixel, and 0 (the scores' fill) is below them
        cs = tuple(full(m, bool, False) for m in cloud_shadow_masks(cloud_s, shadow_s, params))
    return ScoredImage(
        masks=cs,
        cloud=cloud,
        shadow=shadow,
        quality=quality,
        valid=valid,
        poor=poor,
        cloudy_percentage=pct,
        roi_coverage_percent=roi_coverage_percent(valid, roi),
    )

