"""Cloud and shadow masks of one single (cloudy) acquisition, at the patches' own pixels:
what the cloud-removal variants ship beside every cloudy patch (pure numpy, no I/O).

* **cloud**: s2cloudless through the scorer registry (:mod:`.scorers`, ``s2cloudless``)
  with the settings the SEN12MS-CR(-TS) loaders give ``S2PixelCloudDetector``
  (``threshold=0.4, average_over=4, dilation_size=2``), at the grid's own pixel size (the
  loaders run it on the 10 m patches): the probability averaged over a disk of
  ``average_over`` pixels, above ``threshold``, dilated by a disk of ``dilation_size``.
* **shadow**: the mosaicking's shadow projection (:func:`.scores.shadow_score`: clouds
  projected along the sun over the cloud heights, dark non-water candidates, erosion and
  dilation) at the algorithm's 20 m score scale, from the block means of the image and of
  the 10 m cloud score; a pixel is shadow when its shadow score exceeds ``cloud_thresh``
  and it is not cloud.

:func:`coverage` is the share of an array's valid pixels under cloud (the loaders'
``np.mean(mask)`` over a patch).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import scorers
from .params import DEFAULT_PARAMS, MosaicParams
from .scores import block_mean, expand, footprint, score_factor, shadow_score

#: Rows of the image classified at a time (the model's feature matrix stays small).
STRIP_ROWS = 512
#: The masks' raster coding: 1 yes, 0 no, NODATA outside the image's footprint.
NODATA = 255


@dataclass(frozen=True)
class MaskSettings:
    """s2cloudless's ``S2PixelCloudDetector`` settings, in pixels of the grid (the
    authors' loaders: ``threshold=0.4, average_over=4, dilation_size=2``)."""

    threshold: float = 0.4
    average_over: int = 4
    dilation_size: int = 2

    def params(self, params: MosaicParams = DEFAULT_PARAMS) -> MosaicParams:
        """``params`` with the s2cloudless scorer set to these settings, classifying every
        pixel (as the loaders do; not the mosaic's coarser ``s2cloudless_scale_m``)."""
        return params.with_overrides({
            "scorer": "s2cloudless", "s2cloudless_threshold": self.threshold,
            "s2cloudless_average_px": self.average_over,
            "s2cloudless_dilation_px": self.dilation_size,
            "s2cloudless_scale_m": params.score_scale_m})


def _strips(height: int, halo: int) -> Iterator[tuple[int, int, int, int]]:
    """(read from, read to, keep from, keep to) rows: strips of :data:`STRIP_ROWS` with
    ``halo`` rows of context on each side."""
    for k0 in range(0, height, STRIP_ROWS):
        k1 = min(height, k0 + STRIP_ROWS)
        yield max(0, k0 - halo), min(height, k1 + halo), k0, k1


def cloud_score(l1c: np.ndarray, valid: np.ndarray, settings: MaskSettings,
                params: MosaicParams = DEFAULT_PARAMS) -> np.ndarray:
    """The s2cloudless score of a (13, H, W) uint16 L1C image at its own pixels, by strips
    (the disk mean and dilation see ``average_over + dilation_size`` rows of context, so
    the strips join seamlessly). (H, W) float32, calibrated: ``> params.cloud_thresh`` is
    cloud (:func:`.scorers.calibrate`)."""
    p = settings.params(params)
    halo = settings.average_over + settings.dilation_size
    out = np.zeros(valid.shape, np.float32)
    for r0, r1, k0, k1 in _strips(valid.shape[0], halo):
        part = scorers.local_score("s2cloudless", l1c[:, r0:r1], valid[r0:r1], p)
        out[k0:k1] = part[k0 - r0:k1 - r0]
    return out


def _float_block_mean(x: np.ndarray, f: int, valid: np.ndarray) -> np.ndarray:
    """Mean of (H, W) float ``x`` over the valid pixels of each ``f`` x ``f`` block (edge
    blocks partial; 0 for a block without a valid pixel). (ceil(H/f), ceil(W/f)) float32."""
    h, w = x.shape
    hs, ws = -(-h // f), -(-w // f)
    num = np.zeros((hs * f, ws * f), np.float64)
    den = np.zeros((hs * f, ws * f), np.float64)
    num[:h, :w] = np.where(valid, x, 0.0)
    den[:h, :w] = valid
    num = num.reshape(hs, f, ws, f).sum(axis=(1, 3))
    den = den.reshape(hs, f, ws, f).sum(axis=(1, 3))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0).astype(np.float32)


def cloud_shadow(l1c: np.ndarray, pixel_size: tuple[float, float], solar_azimuth: float,
                 solar_zenith: float, settings: MaskSettings = MaskSettings(),
                 params: MosaicParams = DEFAULT_PARAMS) -> np.ndarray:
    """The masks of one acquisition (see the module doc).

    Args:
        l1c: (13, H, W) uint16 L1C digital numbers, 0 in every band outside the footprint.
        pixel_size: (x, y) metres of a pixel (10 m on the scene grid).
        solar_azimuth, solar_zenith: the acquisition's mean solar angles, degrees.
        settings: s2cloudless's settings (the authors' loaders' by default).
        params: the run's mosaicking constants (shadow test, cloud heights, 20 m scale).
    Returns:
        (2, H, W) uint8: band 0 cloud, band 1 shadow; 1 yes, 0 no, :data:`NODATA` outside
        the footprint.
    """
    valid = footprint(l1c)
    score = cloud_score(l1c, valid, settings, params)
    cloud = (score > params.cloud_thresh) & valid
    f = score_factor(pixel_size, params)
    small = block_mean(l1c, f)
    cloud_s = _float_block_mean(score, f, valid)
    spx = (pixel_size[0] * f, pixel_size[1] * f)
    shadow_s = shadow_score(small, cloud_s, spx, solar_azimuth, solar_zenith, params)
    shadow = expand(shadow_s > params.cloud_thresh, f, valid.shape) & valid & ~cloud
    out = np.full((2, *valid.shape), NODATA, np.uint8)
    out[0][valid] = cloud[valid]
    out[1][valid] = shadow[valid]
    return out


def coverage(mask: np.ndarray) -> float:
    """Share (0..1) of the pixels of a (H, W) uint8 mask band that are 1, over its valid
    (not :data:`NODATA`) pixels; 0.0 when none is valid."""
    valid = mask != NODATA
    n = int(valid.sum())
    return float((mask == 1).sum()) / n if n else 0.0
