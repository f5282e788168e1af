"""The scores of the mosaicking algorithm (SEN12MS section 3.1), as pure numpy: cloud score,
shadow score by projection over cloud heights, quality score, poor mask, CLOUDY_PERCENTAGE,
and the 20 m scale handling (block means, expansion).

Array conventions:

* ``l1c``: (13, H, W) uint16 Level-1C digital numbers in the dataset's band order
  (:data:`sen12ms_build.products.S2_BANDS`); 0 is nodata (outside the footprint).
* scores: (H, W) float32; masks: (H, W) bool.
* ``pixel_size``: (x, y) ground size of one pixel in metres (non-square on the 0.0001 degree
  export grid, where x shrinks with the cosine of the latitude).
* solar angles in degrees; azimuth clockwise from north.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Iterator, Sequence

import numpy as np
from scipy import ndimage

from ..products import S2_BANDS
from .params import DEFAULT_PARAMS, MosaicParams

_BAND = {name: i for i, name in enumerate(S2_BANDS)}


# --- elementary operations -----------------------------------------------------------------

def rescale(x: np.ndarray, rng: tuple[float, float]) -> np.ndarray:
    """``(x - a) / (b - a)``, not clipped (the score's min/max bound it)."""
    a, b = rng
    return (x - a) / (b - a)


def normalized_difference(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``(p - q) / (p + q)``; 0 where ``p + q == 0``."""
    s = p + q
    out = np.zeros(s.shape, np.float32)
    np.divide(p - q, s, out=out, where=s != 0)  # the quotient in the inputs' precision
    return out


def footprint(l1c: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with data (not 0 in every band)."""
    if l1c.dtype.kind in "ui" and l1c.shape[0] > 1:
        # integers: a pixel is nonzero in some band iff the bitwise OR of its bands is
        acc = np.bitwise_or(l1c[0], l1c[1])
        for band in l1c[2:]:
            np.bitwise_or(acc, band, out=acc)
        return acc != 0
    valid = l1c[0] != 0
    for band in l1c[1:]:  # band by band: no (13, H, W) temporary
        valid |= band != 0
    return valid


def toa_reflectance(l1c: np.ndarray, params: MosaicParams = DEFAULT_PARAMS) -> np.ndarray:
    """(13, H, W) float32 reflectance: digital numbers / ``reflectance_scale``."""
    return (l1c.astype(np.float32) / np.float32(params.reflectance_scale))


#: rows per band of :func:`project_clouds` and :func:`block_mean` (output rows): sized so
#: that their partial sums stay in the CPU cache
_PROJECT_ROWS = 32
_BLOCK_ROWS = 8
#: rows per band of the per-pixel arithmetic (cloud score indicators, shadow candidates)
_PIXEL_ROWS = 16

#: bands the paper's cloud score and shadow candidates read
_CLOUD_BANDS = ("B1", "B2", "B3", "B4", "B8", "B10", "B11")
_SHADOW_BANDS = ("B4", "B8", "B11", "B12")


class _Reflectance(dict):
    """:func:`toa_reflectance` of single bands of one (13, H, W) image (or a band of its
    rows), computed on first use and kept: the same float32 values as the whole cube's."""

    def __init__(self, l1c: np.ndarray, params: MosaicParams):
        super().__init__()
        self.l1c = l1c
        self.scale = np.float32(params.reflectance_scale)

    def __missing__(self, name: str) -> np.ndarray:
        band = self.l1c[_BAND[name]]
        out = np.empty(band.shape, np.float32)
        np.divide(band, self.scale, out=out, dtype=np.float32)
        self[name] = out
        return out


def focal_mean(x: np.ndarray, radius: int, valid: np.ndarray | None = None) -> np.ndarray:
    """Mean over a (2r+1) x (2r+1) square, over valid pixels only (as Earth Engine's
    ``reduceNeighborhood`` ignores masked pixels). Returns float32; 0 where no valid neighbour."""
    return _focal_mean(x, radius, valid)


def _focal_mean(x: np.ndarray, radius: int, valid: np.ndarray | None,
                cache: dict | None = None, only_valid: bool = False) -> np.ndarray:
    """:func:`focal_mean`; ``cache`` keeps the filtered weights (and where they are
    positive) per radius for further calls with the same ``valid``. With ``only_valid`` the
    result is also 0 outside ``valid``."""
    size = 2 * radius + 1
    if valid is None:
        return ndimage.uniform_filter(x.astype(np.float64), size=size,
                                      mode="nearest").astype(np.float32)
    num = np.zeros(x.shape, np.float64)
    np.copyto(num, x, where=valid)  # where(valid, float64(x), 0)
    num = ndimage.uniform_filter(num, size=size, mode="constant")
    key = ("den", radius, only_valid)
    if cache is not None and key in cache:
        den, ok = cache[key]
    else:
        den, ok = _focal_weights(valid, radius, only_valid)
        if cache is not None:
            cache[key] = den, ok
    out = np.zeros(x.shape, np.float32)
    np.divide(num, den, out=out, where=ok)  # float64 quotient, rounded to float32
    return out


#: the focal weights of the last footprint seen: [(footprint, {(radius, only_valid): (den,
#: ok)})]. Acquisitions of one ROI clipped to it mostly share their footprint, and the
#: weights depend on nothing else. Read-only arrays; one entry, so memory stays flat.
_LAST_WEIGHTS: list = []
_WEIGHTS_LOCK = threading.Lock()


def _focal_weights(valid: np.ndarray, radius: int,
                   only_valid: bool) -> tuple[np.ndarray, np.ndarray]:
    """The filtered footprint of :func:`focal_mean` (``den``) and where the mean is taken
    (``ok``: ``den > 1e-9``, and ``valid`` with ``only_valid``), reused from the last call
    when the footprint is the same array of values (compared in full, not hashed)."""
    key = (radius, only_valid)
    with _WEIGHTS_LOCK:
        last = _LAST_WEIGHTS[0] if _LAST_WEIGHTS else None
    same = (last is not None and last[0].shape == valid.shape
            and np.array_equal(last[0], valid))
    if same and key in last[1]:
        return last[1][key]
    den = ndimage.uniform_filter(valid.astype(np.float64), size=2 * radius + 1,
                                 mode="constant")
    ok = den > 1e-9
    if only_valid:
        ok &= valid
    den.flags.writeable = ok.flags.writeable = False
    with _WEIGHTS_LOCK:
        if same:
            last[1][key] = den, ok
        else:
            kept = valid.copy()
            kept.flags.writeable = False
            _LAST_WEIGHTS[:] = [(kept, {key: (den, ok)})]
    return den, ok


def disk(radius: float) -> np.ndarray:
    """Circular kernel: offsets whose centre lies within ``radius`` pixels."""
    r = int(math.floor(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx * xx + yy * yy) <= radius * radius + 1e-9


def _focal_extreme(x: np.ndarray, radius: float, iterations: int,
                   op: np.ufunc) -> np.ndarray:
    """``iterations`` x grey erosion (``op`` = minimum) or dilation (maximum) of ``x`` by
    :func:`disk` (``radius``) with ``mode="nearest"``, as ``ndimage.grey_erosion`` /
    ``grey_dilation`` compute it, bit for bit (min and max are exact): the disk is split into
    the rectangles of its rows, each a separable 1-D filter pair."""
    fp = disk(radius)
    if iterations <= 0:
        return x
    r = fp.shape[0] // 2
    filt = ndimage.minimum_filter1d if op is np.minimum else ndimage.maximum_filter1d
    # rectangles (half height, half width): rows |dy| <= hh all reach at least |dx| <= hw
    widths = [int(np.flatnonzero(row).max()) - r for row in fp]  # half width per row
    rects = sorted({(max(abs(dy - r) for dy in range(fp.shape[0]) if widths[dy] >= hw), hw)
                    for hw in set(widths)})
    if len(rects) == 1 and _no_ties(x):
        # a rectangle: k iterations with "nearest" edges reach the clamped index range
        # [i - k h, i + k h] on each axis, the rectangle k times as large, in one pass per axis
        # (the same element wins: no NaN and no -0.0 whose choice could depend on the order)
        hh, hw = rects[0]
        y = filt(x, 2 * hw * iterations + 1, axis=1, mode="nearest") if hw else x
        return filt(y, 2 * hh * iterations + 1, axis=0, mode="nearest") if hh else y
    for _ in range(iterations):
        out = None
        for hh, hw in rects:
            y = filt(x, 2 * hw + 1, axis=1, mode="nearest") if hw else x
            y = filt(y, 2 * hh + 1, axis=0, mode="nearest") if hh else y
            out = y if out is None else op(out, y, out=out if out is not x else None)
        x = out
    return x


def _no_ties(x: np.ndarray) -> bool:
    """No NaN and no negative zero in ``x``: every minimum or maximum of its values is one
    bit pattern, whichever order the elements are compared in."""
    if x.dtype.kind != "f":
        return True
    return not (np.isnan(x).any() or (np.signbit(x) & (x == 0)).any())


# --- quality score module ------------------------------------------------------------------

def cloud_score(l1c: np.ndarray, params: MosaicParams = DEFAULT_PARAMS,
                valid: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel cloud likelihood in [floor, 1], smoothed (spec section 2).

    Starts at 1 and takes the minimum over the six rescaled indicators, floors at
    ``cloud_score_floor`` and averages over the square ``cloud_kernel_radius`` kernel.
    Returns (H, W) float32; 0 outside ``valid``.
    """
    if valid is None:
        valid = footprint(l1c)
    return _cloud_score(l1c, valid, params)


def _row_bands(height: int) -> Iterator[slice]:
    """Bands of :data:`_PIXEL_ROWS` rows covering ``height`` rows: per-pixel arithmetic
    done band by band keeps its temporaries in the CPU cache."""
    for r0 in range(0, height, _PIXEL_ROWS):
        yield slice(r0, min(height, r0 + _PIXEL_ROWS))


def _cloud_score(l1c: np.ndarray, valid: np.ndarray, params: MosaicParams,
                 cache: dict | None = None) -> np.ndarray:
    """:func:`cloud_score`; ``cache`` as :func:`_focal_mean`'s."""
    score = np.ones(valid.shape, np.float32)
    for rows in _row_bands(valid.shape[0]):
        out = score[rows]
        for indicator in _cloud_indicators(_Reflectance(l1c[:, rows], params), params):
            np.minimum(out, indicator, out=out)
        np.maximum(out, np.float32(params.cloud_score_floor), out=out)
    return _focal_mean(score, params.cloud_kernel_radius, valid, cache, only_valid=True)


def _cloud_indicators(b: _Reflectance, params: MosaicParams) -> Iterator[np.ndarray]:
    """The six rescaled cloud indicators, one at a time, in the published order."""
    yield rescale(b["B2"], params.b2_range)
    yield rescale(b["B1"], params.b1_range)
    yield rescale(b["B1"] + b["B10"], params.b1_b10_range)
    yield rescale(b["B4"] + b["B3"] + b["B2"], params.rgb_sum_range)
    yield rescale(normalized_difference(b["B8"], b["B11"]), params.ndmi_range)
    yield rescale(normalized_difference(b["B3"], b["B11"]), params.ndsi_range)


def cloud_mask(score: np.ndarray, params: MosaicParams = DEFAULT_PARAMS) -> np.ndarray:
    """(H, W) bool: cloud score above ``cloud_thresh``."""
    return score > params.cloud_thresh


def cloud_shadow_masks(cloud: np.ndarray, shadow: np.ndarray,
                       params: MosaicParams = DEFAULT_PARAMS) -> tuple[np.ndarray, np.ndarray]:
    """The quality layers' masks (:data:`sen12ms_build.products.AUX_MASKS`) from the cloud
    and shadow scores ((H, W) float32): ``cloud`` = cloud score > ``cloud_thresh``
    (:func:`cloud_mask`), ``shadow`` = shadow score > ``cloud_thresh`` and not cloud. Returns
    two (H, W) bool arrays. The Earth Engine side is ``graphs.cloud_shadow_masks``."""
    is_cloud = cloud_mask(cloud, params)
    return is_cloud, (shadow > params.cloud_thresh) & ~is_cloud


class FloatOps:
    """The arithmetic namespace of :func:`shadow_displacement_m` for Python floats
    (``math``); :class:`sen12ms_build.backends.earthengine.graphs.EEOps` is the same for
    ``ee.Number``. One formula, two executions."""

    @staticmethod
    def radians(x: float) -> float:
        return math.radians(x)

    @staticmethod
    def tan(x: float) -> float:
        return math.tan(x)

    @staticmethod
    def sin(x: float) -> float:
        return math.sin(x)

    @staticmethod
    def cos(x: float) -> float:
        return math.cos(x)

    @staticmethod
    def mul(a: float, b: float) -> float:
        return a * b


FLOAT_OPS = FloatOps()


def shadow_displacement_m(solar_azimuth: Any, solar_zenith: Any, height_m: Any,
                          ops: Any = FLOAT_OPS) -> tuple[Any, Any]:
    """Where the cloud that shades a pixel lies, seen from that pixel: ``(east, north)``
    metres towards the sun, ``d = tan(zenith) * h`` along the solar azimuth (degrees,
    clockwise from north). A cloud at height ``h`` casts its shadow ``d`` metres away from
    the sun: sun due south at 45 degrees elevation puts a 1 km cloud's shadow 1 km north, so
    the pixel's cloud lies at ``(0, -1000)``.

    Written once for both backends: ``ops`` supplies ``radians``, ``tan``, ``sin``, ``cos``
    and ``mul`` (:data:`FLOAT_OPS` for floats; ``graphs.EE_OPS`` for ``ee.Number``, where
    the result feeds ``Image.displace``, which samples its input at ``p + (east, north)``).
    Equal to the published scripts' ``az = azimuth + 180``, ``dx = -sin(az) * d``,
    ``dy = -cos(az) * d``.
    """
    az = ops.radians(solar_azimuth)
    d = ops.mul(ops.tan(ops.radians(solar_zenith)), height_m)
    return ops.mul(ops.sin(az), d), ops.mul(ops.cos(az), d)


def shadow_offsets_px(pixel_size: tuple[float, float], solar_azimuth: float,
                      solar_zenith: float, heights_m: Sequence[float]) -> list[tuple[int, int]]:
    """(row, col) offsets from a pixel towards the sun where a cloud at each height would
    cast its shadow onto that pixel (:func:`shadow_displacement_m` in pixels, rounded).
    Rows grow southwards.
    """
    px, py = pixel_size
    out = []
    for h in heights_m:
        east, north = shadow_displacement_m(solar_azimuth, solar_zenith, h)
        out.append((int(round(-north / py)), int(round(east / px))))
    return out


def project_clouds(score: np.ndarray, valid: np.ndarray, pixel_size: tuple[float, float],
                   solar_azimuth: float, solar_zenith: float,
                   heights_m: Sequence[float]) -> np.ndarray:
    """Mean over cloud heights of the cloud score found towards the sun (spec 2.3).

    A cloud at height h shades the ground ``tan(zenith) * h`` metres away from the sun, so
    the projected image at ``p`` is the score at ``p + d`` towards the sun. Heights whose
    source lies outside the image or its footprint do not count (as masked pixels in Earth
    Engine's collection mean). Returns (H, W) float32.
    """
    h, w = score.shape
    offsets = shadow_offsets_px(pixel_size, solar_azimuth, solar_zenith, heights_m)
    # masked score and count once (the same float64 additions in the same order as adding
    # ``where(ok, src, 0)`` per height, so the result is bit-identical)
    masked = np.where(valid, score, 0.0).astype(np.float64, copy=False)
    ones = valid.view(np.uint8) if valid.dtype == bool else valid.astype(np.uint8)
    out = np.zeros((h, w), np.float32)
    # by bands of destination rows, so that the sums stay in the CPU cache; every pixel
    # still adds its heights in order. Counts up to the number of heights: one byte each.
    k = _PROJECT_ROWS
    acc = np.empty((min(k, h), w), np.float64)
    n = np.empty((min(k, h), w), np.uint8 if len(offsets) < 256 else np.int32)
    for a0 in range(0, h, k):
        a1 = min(h, a0 + k)
        acc_k, n_k = acc[:a1 - a0], n[:a1 - a0]
        acc_k.fill(0.0)
        n_k.fill(0)
        for dr, dc in offsets:
            # destination rows/cols whose source (r + dr, c + dc) is inside the array
            r0, r1 = max(a0, -dr), min(a1, h - dr)
            c0, c1 = max(0, -dc), min(w, w - dc)
            if r0 >= r1 or c0 >= c1:
                continue
            acc_k[r0 - a0:r1 - a0, c0:c1] += masked[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
            n_k[r0 - a0:r1 - a0, c0:c1] += ones[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
        # float64 mean, rounded to float32; 0 where no height counts
        np.divide(acc_k, n_k, out=out[a0:a1], where=n_k > 0)
    return out


def shadow_candidates(l1c: np.ndarray, cloud: np.ndarray,
                      params: MosaicParams = DEFAULT_PARAMS) -> np.ndarray:
    """(H, W) bool: dark (``B8 + B11 + B12 < ir_sum_thresh``), not water
    (``NDVI >= ndvi_thresh``; water stays a candidate with ``params.shadow_over_water``) and
    not cloud."""
    return _shadow_candidates(l1c, footprint(l1c), cloud, params)


def _shadow_candidates(l1c: np.ndarray, valid: np.ndarray, cloud: np.ndarray,
                       params: MosaicParams) -> np.ndarray:
    """:func:`shadow_candidates` given the footprint ``valid``."""
    out = np.empty(valid.shape, bool)
    for rows in _row_bands(valid.shape[0]):
        r = _Reflectance(l1c[:, rows], params)
        dark = (r["B8"] + r["B11"] + r["B12"]) < params.ir_sum_thresh
        if not params.shadow_over_water:
            water = normalized_difference(r["B8"], r["B4"]) < params.ndvi_thresh
            dark &= ~water
        dark &= ~cloud_mask(cloud[rows], params)
        np.logical_and(dark, valid[rows], out=out[rows])
    return out


def shadow_score(l1c: np.ndarray, cloud: np.ndarray, pixel_size: tuple[float, float],
                 solar_azimuth: float, solar_zenith: float,
                 params: MosaicParams = DEFAULT_PARAMS) -> np.ndarray:
    """Per-pixel shadow likelihood (spec 2, shadow score steps 1-5). (H, W) float32."""
    return _shadow_score(l1c, footprint(l1c), cloud, pixel_size,
                         solar_azimuth, solar_zenith, params)


def _shadow_score(l1c: np.ndarray, valid: np.ndarray, cloud: np.ndarray,
                  pixel_size: tuple[float, float], solar_azimuth: float,
                  solar_zenith: float, params: MosaicParams) -> np.ndarray:
    """:func:`shadow_score` given the footprint ``valid``."""
    projected = project_clouds(cloud, valid, pixel_size, solar_azimuth, solar_zenith,
                               params.cloud_heights_m)
    s = projected * _shadow_candidates(l1c, valid, cloud, params)
    s = _focal_extreme(s, params.erode_radius_px, params.erode_iterations, np.minimum)
    s = _focal_extreme(s, params.dilate_radius_px, params.dilate_iterations, np.maximum)
    size = 2 * params.shadow_max_radius_px + 1
    s = ndimage.maximum_filter(s, size=size, mode="nearest").astype(np.float32, copy=False)
    np.copyto(s, np.float32(0), where=~valid)
    return s


def quality_score(cloud: np.ndarray, shadow: np.ndarray, valid: np.ndarray,
                  params: MosaicParams = DEFAULT_PARAMS) -> np.ndarray:
    """``-mean_r5(max(cloud, shadow))``: higher is better. (H, W) float32; -inf outside
    ``valid`` so that an uncovered pixel never wins the quality mosaic."""
    return _quality_score(cloud, shadow, valid, params)


def _quality_score(cloud: np.ndarray, shadow: np.ndarray, valid: np.ndarray,
                   params: MosaicParams, cache: dict | None = None) -> np.ndarray:
    """:func:`quality_score`; ``cache`` as :func:`_focal_mean`'s."""
    q = _focal_mean(np.maximum(cloud, shadow), params.quality_kernel_radius, valid, cache,
                    only_valid=True)
    np.negative(q, out=q)
    np.copyto(q, np.float32(-np.inf), where=~valid)
    return q


def poor_mask(quality: np.ndarray, params: MosaicParams = DEFAULT_PARAMS) -> np.ndarray:
    """Cloud-and-shadow mask: the quality score thresholded at ``cloud_thresh``
    (``-quality > cloud_thresh``). (H, W) bool, False outside the footprint."""
    return np.isfinite(quality) & (-quality > params.cloud_thresh)


def cloudy_percentage(cloud: np.ndarray, valid: np.ndarray,
                      roi: np.ndarray | None = None,
                      params: MosaicParams = DEFAULT_PARAMS) -> float:
    """CLOUDY_PERCENTAGE: cloudy area inside the ROI over the (ROI-clipped) footprint area,
    x 100. Returns 100.0 for an image with no pixel in the ROI."""
    return _cloudy_percentage(cloud_mask(cloud, params), valid, roi)


def _cloudy_percentage(cloudy: np.ndarray, valid: np.ndarray,
                       roi: np.ndarray | None) -> float:
    """:func:`cloudy_percentage` of the cloud mask ``cloudy``."""
    inside = valid if roi is None else valid & roi
    n = int(np.count_nonzero(inside))
    if n == 0:
        return 100.0
    return 100.0 * float(np.count_nonzero(cloudy & inside)) / n


def roi_coverage_percent(valid: np.ndarray, roi: np.ndarray | None = None) -> float:
    """ROI_COVERAGE_PERCENT: share of the ROI covered by the image footprint, x 100."""
    if roi is None:
        return 100.0 * float(valid.mean()) if valid.size else 0.0
    n = int(roi.sum())
    return 100.0 * float((valid & roi).sum()) / n if n else 0.0


# --- scale handling --------------------------------------------------------------------

def score_factor(pixel_size: tuple[float, float], params: MosaicParams = DEFAULT_PARAMS) -> int:
    """Integer block size that brings ``pixel_size`` closest to ``score_scale_m`` (>= 1)."""
    mean_px = math.sqrt(abs(pixel_size[0] * pixel_size[1]))
    return max(1, int(round(params.score_scale_m / mean_px)))


def block_mean(l1c: np.ndarray, factor: int) -> np.ndarray:
    """Average (C, H, W) uint16 over ``factor`` x ``factor`` blocks, ignoring nodata (0);
    edge blocks are partial. Returns (C, ceil(H/f), ceil(W/f)) uint16. Works band by band,
    so its memory is a few (H, W) planes whatever C."""
    return _block_mean(l1c, factor)


def _block_mean(l1c: np.ndarray, factor: int, valid: np.ndarray | None = None) -> np.ndarray:
    """:func:`block_mean`, given the footprint ``valid`` of ``l1c`` if known."""
    if factor == 1:
        return l1c
    if valid is None:
        valid = footprint(l1c)
    # Block sums as exact integers (< 2**24 for factor <= 16, so equal to float32 sums in
    # any order). Outside the footprint every band is 0, so the sum of a block without data
    # is 0 and its mean 0 / 1 = 0, as masking by the footprint would give.
    if factor * factor * 65535 < 2**24:
        return _block_mean_exact(l1c, factor, valid)
    return _block_mean_float(l1c, factor, valid)  # pragma: no cover


def _block_mean_float(l1c: np.ndarray, factor: int,
                      valid: np.ndarray) -> np.ndarray:  # pragma: no cover
    """:func:`block_mean` for factors above 16 (scores at >= 170 m from 10 m input): float32
    block sums, added in the one order (offset by offset in the block)."""
    c, h, w = l1c.shape
    hs, ws = -(-h // factor), -(-w // factor)

    def block_sum(plane: np.ndarray, dtype: type) -> np.ndarray:
        acc = np.zeros((hs, ws), dtype)
        for dy in range(factor):
            for dx in range(factor):
                part = plane[dy::factor, dx::factor]
                acc[:part.shape[0], :part.shape[1]] += part
        return acc

    den = np.maximum(block_sum(valid.view(np.uint8), np.uint32), 1).astype(np.float32)
    out = np.empty((c, hs, ws), np.uint16)
    for b in range(c):
        out[b] = np.rint(block_sum(l1c[b].astype(np.float32), np.float32) / den)
    return out


def _block_mean_exact(l1c: np.ndarray, factor: int, valid: np.ndarray,
                      fill_valid: bool = False) -> np.ndarray:
    """:func:`block_mean` for ``factor * factor * 65535 < 2**24``: the block sums are exact
    integers (uint32), so equal to float32 sums in any order; each is cast to float32
    (exact), divided in float32 by the block's footprint count and rounded half to even.
    Works by bands of :data:`_BLOCK_ROWS` output rows, all channels at once, so that the
    partial sums stay in the CPU cache. With ``fill_valid`` (integer ``l1c``, several
    bands) ``valid`` is an (H, W) bool array to fill with :func:`footprint` of ``l1c``,
    computed band of rows by band of rows as they are read."""
    c, h, w = l1c.shape
    f = factor
    hs, ws = -(-h // f), -(-w // f)
    k = min(_BLOCK_ROWS, hs)
    out = np.empty((c, hs, ws), np.uint16)
    flags = valid.view(np.uint8)
    rows, acc = np.empty((c, k, w), np.uint32), np.empty((c, k, ws), np.uint32)
    vrows, vacc = np.empty((k, w), np.uint16), np.empty((k, ws), np.uint16)
    mean, den = np.empty((c, k, ws), np.float32), np.empty((k, ws), np.float32)
    bits = np.empty((k * f, w), l1c.dtype) if fill_valid else None
    for r0 in range(0, hs, k):
        r1 = min(hs, r0 + k)
        n = r1 - r0
        src, vsrc = l1c[:, r0 * f:r1 * f], flags[r0 * f:r1 * f]
        if bits is not None:  # footprint(): nonzero in some band iff the bands' OR is
            b_ = bits[:src.shape[1]]
            np.bitwise_or(src[0], src[1], out=b_)
            for band in src[2:]:
                b_ |= band
            np.not_equal(b_, 0, out=valid[r0 * f:r1 * f])
        rr, aa, vr, va = rows[:, :n], acc[:, :n], vrows[:n], vacc[:n]
        np.copyto(rr, src[:, 0::f])  # the block's rows added first (whole rows) ...
        np.copyto(vr, vsrc[0::f])
        for dy in range(1, f):
            part = src[:, dy::f]
            rr[:, :part.shape[1]] += part
            part = vsrc[dy::f]
            vr[:part.shape[0]] += part
        np.copyto(aa, rr[:, :, 0::f])  # ... then its columns
        np.copyto(va, vr[:, 0::f])
        for dx in range(1, f):
            part = rr[:, :, dx::f]
            aa[:, :, :part.shape[2]] += part
            part = vr[:, dx::f]
            va[:, :part.shape[1]] += part
        # a block without data sums to 0 in every band: 0 / max(0, 1) = 0
        d = den[:n]
        np.maximum(va, 1, out=d, casting="unsafe")
        m = mean[:, :n]
        np.divide(aa, d, out=m, dtype=np.float32)
        np.rint(m, out=m)
        out[:, r0:r1] = m
    return out


def expand(x: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of a (h, w) array by ``factor``, cropped to ``shape``."""
    if factor == 1:
        return x[: shape[0], : shape[1]]
    out = np.empty((min(shape[0], x.shape[0] * factor), min(shape[1], x.shape[1] * factor)),
                   x.dtype)
    return _expand_into(x, factor, out)


def _expand_masked(x: np.ndarray, factor: int, invalid: np.ndarray, dtype: type,
                   fill: Any) -> np.ndarray:
    """``where(~invalid, expand(x, factor, invalid.shape), fill)`` as a new ``dtype``
    array, by bands of rows (each expanded and masked while in the CPU cache)."""
    out = np.empty(invalid.shape, dtype)
    k = _BLOCK_ROWS * 4  # score rows per band
    for r0 in range(0, x.shape[0], k):
        part = out[r0 * factor:(r0 + k) * factor]
        if not part.shape[0]:
            break
        _expand_into(x[r0:r0 + k], factor, part)
        np.copyto(part, fill, where=invalid[r0 * factor:(r0 + k) * factor])
    return out


def _expand_into(x: np.ndarray, factor: int, out: np.ndarray) -> np.ndarray:
    """``out[...] = expand(x, factor, out.shape)`` (cast to ``out.dtype``): each row of
    ``x`` repeated along the columns once, then copied into its ``factor`` output rows."""
    hh, ww = out.shape
    if factor == 1:
        out[...] = x[:hh, :ww]
        return out
    rows = np.empty((x.shape[0], x.shape[1] * factor), x.dtype)
    for dx in range(factor):
        rows[:, dx::factor] = x
    rows = rows[:, :ww]
    for dy in range(factor):
        part = out[dy::factor]
        part[...] = rows[:part.shape[0]]
    return out

