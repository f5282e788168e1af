"""Cloud-free Sentinel-2 mosaicking (SEN12MS section 3.1), as pure numpy.

This module is the single definition of the algorithm's constants (:class:`MosaicParams`):
the local backend executes them here with numpy, the Earth Engine backend imports the same
object and executes them as Earth Engine expressions. The reference is
``shared/spec/mosaicking.md`` (Schmitt, Hughes, Qiu, Zhu 2019, "Aggregating cloud-free
Sentinel-2 images with Google Earth Engine").

Array conventions:

* ``l1c``: (13, H, W) uint16 Level-1C digital numbers in the dataset's band order
  (:data:`sen12ms_build.products.S2_BANDS`); 0 is nodata (outside the footprint).
* scores: (H, W) float32; masks: (H, W) bool.
* ``pixel_size``: (x, y) ground size of one pixel in metres (non-square on the 0.0001 degree
  export grid, where x shrinks with the cosine of the latitude).
* solar angles in degrees; azimuth clockwise from north.

The scores are computed at the algorithm's 20 m scale: :func:`score_image` averages the
input to the nearest integer multiple of its pixel size and expands the scores back.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
from scipy import ndimage

from .products import S2_BANDS

_BAND = {name: i for i, name in enumerate(S2_BANDS)}


@dataclass(frozen=True)
class MosaicParams:
    """Every constant of the mosaicking algorithm, with the published scripts' defaults.

    Ranges are ``(a, b)`` for ``rescale(x, [a, b]) = (x - a) / (b - a)``; a decreasing range
    (``a > b``) scores high below ``b``.
    """

    #: L1C digital numbers per unit of top-of-atmosphere reflectance.
    reflectance_scale: float = 10000.0
    # --- cloud score indicators (reflectance) --------------------------------------------
    b2_range: tuple[float, float] = (0.1, 0.5)  # blue
    b1_range: tuple[float, float] = (0.1, 0.3)  # aerosol
    b1_b10_range: tuple[float, float] = (0.15, 0.2)  # aerosol + cirrus
    rgb_sum_range: tuple[float, float] = (0.2, 0.8)  # B4 + B3 + B2
    ndmi_range: tuple[float, float] = (-0.1, 0.1)  # nd(B8, B11): clouds are moist
    ndsi_range: tuple[float, float] = (0.8, 0.6)  # nd(B3, B11): clouds are not snow
    cloud_score_floor: float = 0.001
    cloud_kernel_radius: int = 5  # square kernel, (2r+1)^2 pixels at score_scale_m
    cloud_thresh: float = 0.2  # cloudThresh: cloud score > this is cloud
    # --- shadow score --------------------------------------------------------------------
    ir_sum_thresh: float = 0.3  # (B8 + B11 + B12) reflectance below this is dark
    ndvi_thresh: float = -0.1  # nd(B8, B4) below this is water
    #: the paper excludes water from the shadow candidates, so a cloud's shadow on water is
    #: never flagged; True keeps dark water pixels under projected clouds as candidates
    shadow_over_water: bool = False
    cloud_heights_m: tuple[int, ...] = tuple(range(200, 10000, 250))
    erode_radius_px: float = 1.5  # circular focal minimum ...
    erode_iterations: int = 3
    dilate_radius_px: float = 3.0  # ... then circular focal maximum ("dilated erosion")
    dilate_iterations: int = 3
    shadow_max_radius_px: int = 1  # final 3 x 3 maximum
    # --- quality score and merge ---------------------------------------------------------
    quality_kernel_radius: int = 5  # square mean of max(cloud, shadow), then negated
    score_scale_m: float = 20.0  # scale at which every score is computed
    keep_thresh: float = 5.0  # keepThresh: CLOUDY_PERCENTAGE below this is a "best" image
    # --- pluggable methods (sen12ms_build.methods, docs/clouds.md) ------------------------
    scorer: str = "paper"  # cloud scorer: paper, s2cloudless, cloudscoreplus
    merge: str = "paper"  # paper: best images on top unmasked; masked: their poor pixels not
    s2cloudless_threshold: float = 0.4  # the package's default probability threshold
    s2cloudless_average_px: int = 2  # disk mean radius at score_scale_m (package: 4 at 10 m)
    s2cloudless_dilation_px: int = 1  # disk dilation radius at score_scale_m (2 at 10 m)
    s2cloudless_floor: float = 0.2  # probabilities up to this score cloud_score_floor (tie)
    cloudscoreplus_clear_thresh: float = 0.6  # cs_cdf >= this is clear (Google's example)

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> "MosaicParams":
        """A copy with some constants replaced, cast to each constant's type.

        Raises:
            KeyError: an unknown name.
            TypeError: a switch (bool constant) given anything but ``True``/``False`` (a
                cast would read the text ``"false"`` as true).
            ValueError: a value that does not cast to the constant's type.
        """
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise KeyError(f"unknown mosaicking constant(s): {', '.join(unknown)}")
        cast: dict[str, Any] = {}
        for key, value in overrides.items():
            current = getattr(self, key)
            if isinstance(current, bool):
                if not isinstance(value, (bool, np.bool_)):
                    raise TypeError(f"{key} must be true or false, got {value!r}")
                value = bool(value)
            elif isinstance(current, tuple):
                value = tuple(type(current[0])(v) for v in value)
            else:
                value = type(current)(value)
            cast[key] = value
        return replace(self, **cast)

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view (tuples as lists), for manifests and request graphs."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}


DEFAULT_PARAMS = MosaicParams()


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
    (:mod:`sen12ms_build.scorers`); shadows are projected from it with the paper's solar
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
        includes_shadow = False
    else:
        from . import scorers

        cloud_s = scorers.local_score(params.scorer, small, valid_s, params)
        includes_shadow = scorers.get(params.scorer).includes_shadow
    if includes_shadow:
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


# --- image merging module ----------------------------------------------------------------

@dataclass
class MergeResult:
    """Output of :func:`merge`.

    Attributes:
        mosaic: (13, H, W) uint16, 0 where no image has data.
        source: (H, W) int16 index of the image each pixel came from, -1 for none.
        poor_share: share (0..1) of covered output pixels that are poor (cloud or shadow)
            in the image they came from.
        best: indices of the "best" images (CLOUDY_PERCENTAGE < keep_thresh), bottom to top.
    """

    mosaic: np.ndarray
    source: np.ndarray
    poor_share: float
    best: list[int]


def merge_order_key(cloudy_pct: float, index: int) -> tuple[float, int]:
    """Sort key of the "best" images, bottom to top: CLOUDY_PERCENTAGE descending (the
    clearest on top), ties broken by the position in the time-sorted collection (earlier
    below). Both backends order by it: :func:`best_images` here, and the Earth Engine
    backend pins the same list into its graph (``graphs.best_collection``)."""
    return (-cloudy_pct, index)


def best_images(cloudy_pct: Sequence[float], params: MosaicParams = DEFAULT_PARAMS) -> list[int]:
    """Indices with CLOUDY_PERCENTAGE < keep_thresh in :func:`merge_order_key` order
    (clearest last, i.e. on top of the mosaic); ties keep acquisition order."""
    keep = [i for i, p in enumerate(cloudy_pct) if p < params.keep_thresh]
    return sorted(keep, key=lambda i: merge_order_key(cloudy_pct[i], i))


def merge_sources(quality: np.ndarray, valid: np.ndarray, cloudy_pct: Sequence[float],
                  params: MosaicParams = DEFAULT_PARAMS,
                  poor: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
    """Per-pixel source image of the merge: the quality mosaic (highest quality wins), with
    the "best" images mosaicked on top wherever they have data (``params.merge`` ``paper``)
    or wherever they have data and are not poor (``masked``: the quality mosaic keeps
    their cloud and shadow pixels).

    Args:
        quality: (N, H, W) float32 quality scores (-inf outside footprints).
        valid: (N, H, W) bool footprints.
        cloudy_pct: N cloudy percentages.
        poor: (N, H, W) bool poor masks for the masked merge (default: :func:`poor_mask`
            of ``quality``).
    Returns:
        (H, W) int16 source index (-1 where no image has data) and the best list.
    """
    n = quality.shape[0]
    if n == 0:
        raise ValueError("no images to merge")
    q = np.where(valid, quality, -np.inf)
    source = np.argmax(q, axis=0).astype(np.int16)
    source[~valid.any(axis=0)] = -1
    best = best_images(cloudy_pct, params)
    masked = params.merge == "masked"
    for i in best:  # later (clearer) images on top
        on_top = valid[i]
        if masked:
            on_top = on_top & ~(poor_mask(quality[i], params) if poor is None else poor[i])
        source[on_top] = i
    return source, best


class RunningMerge:
    """:func:`merge_sources` one image at a time, for scenes whose N score planes do not fit
    in memory together: O(H x W) memory whatever N, the same result.

    Two ways to feed it, with the same result:

    * :meth:`add` every image in order (its quality and poor planes); then :meth:`finish`
      puts the "best" images on top, asking ``load(i)`` for the (valid, poor) planes of
      those images only (kept aside by the caller);
    * :meth:`add_on_top` every image in order (with its footprint and CLOUDY_PERCENTAGE):
      a best image goes on top at once, above the best images it outranks
      (:func:`merge_order_key`), so nothing has to be kept aside; then :meth:`finish_on_top`.
      Each call returns where the image holds the merge now: a caller assembling the mosaic
      as it goes copies the image's pixels there, and the last copy at each pixel is the
      merge's choice.
    """

    def __init__(self, shape: tuple[int, int]):
        self.quality = np.full(shape, -np.inf, np.float32)
        self.source = np.full(shape, -1, np.int16)
        self.poor = np.zeros(shape, bool)
        self.n = 0
        # add_on_top: the best image on top of each pixel (-1: none), its poor plane, and
        # every image's CLOUDY_PERCENTAGE so far
        self.top: np.ndarray | None = None
        self.top_poor: np.ndarray | None = None
        self.cloudy: list[float] = []

    def add(self, quality: np.ndarray, poor: np.ndarray) -> int:
        """Take image ``n``: it wins where its quality is strictly higher (ties keep the
        earlier image, as ``argmax``). Returns its index."""
        return self._take(quality, poor)[0]

    def _take(self, quality: np.ndarray, poor: np.ndarray) -> tuple[int, np.ndarray]:
        """:meth:`add`, returning the index and where the image wins the quality mosaic."""
        i = self.n
        better = quality > self.quality
        np.copyto(self.quality, quality, where=better)
        np.copyto(self.source, np.int16(i), where=better)
        np.copyto(self.poor, poor, where=better)
        self.n += 1
        return i, better

    def add_on_top(self, quality: np.ndarray, poor: np.ndarray, valid: np.ndarray,
                   cloudy_pct: float, params: MosaicParams = DEFAULT_PARAMS) -> np.ndarray:
        """Take image ``n`` as :meth:`add` does and, if it is a "best" image
        (CLOUDY_PERCENTAGE below ``keep_thresh``), put it on top now wherever it has data
        (``params.merge`` ``masked``: and is not poor) and outranks the best image already
        there. Returns the (H, W) bool pixels the image holds in the merge now: on top, or
        winning the quality mosaic where no best image lies on top."""
        i, better = self._take(quality, poor)
        self.cloudy.append(float(cloudy_pct))
        if self.top is None:
            self.top = np.full(self.source.shape, -1, np.int16)
            self.top_poor = np.zeros(self.source.shape, bool)
        if not best_images([cloudy_pct], params):
            better &= self.top < 0
            return better
        on = valid & ~poor if params.merge == "masked" else valid.copy()
        # outranks: no best image yet (-1), or a best image k whose key is lower
        key = merge_order_key(self.cloudy[i], i)
        below = np.array([True] + [merge_order_key(self.cloudy[k], k) < key
                                   for k in range(i)], bool)
        on &= below[self.top + 1]
        np.copyto(self.top, np.int16(i), where=on)
        np.copyto(self.top_poor, poor, where=on)
        better &= self.top < 0
        better |= on
        return better

    def finish_on_top(self, params: MosaicParams = DEFAULT_PARAMS
                      ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """:meth:`finish` after :meth:`add_on_top`: (source (H, W) int16, chosen poor (H, W)
        bool, best indices bottom to top)."""
        if self.top is not None:
            on_top = self.top >= 0
            np.copyto(self.source, self.top, where=on_top)
            np.copyto(self.poor, self.top_poor, where=on_top)
        return self.source, self.poor & (self.source >= 0), best_images(self.cloudy, params)

    def finish(self, cloudy_pct: Sequence[float],
               load: Callable[[int], tuple[np.ndarray, np.ndarray]],
               params: MosaicParams = DEFAULT_PARAMS) -> tuple[np.ndarray, np.ndarray,
                                                              list[int]]:
        """(source (H, W) int16, chosen poor (H, W) bool, best indices). With
        ``params.merge`` ``masked`` a best image goes on top only where it is not poor."""
        best = best_images(cloudy_pct, params)
        masked = params.merge == "masked"
        for i in best:
            valid, poor = load(i)
            if masked:
                valid = valid & ~poor
            np.copyto(self.source, np.int16(i), where=valid)
            np.copyto(self.poor, poor, where=valid)
        return self.source, self.poor & (self.source >= 0), best


def assemble(images: Sequence[np.ndarray] | np.ndarray, source: np.ndarray) -> np.ndarray:
    """(C, H, W) mosaic taking each pixel from ``images[source]``; 0 where source is -1.
    ``images`` may be a lazy sequence (e.g. memory-mapped files opened on access): each
    is accessed once."""
    out = None
    for i in range(len(images)):
        img = images[i]
        if out is None:
            out = np.zeros(img.shape, img.dtype)
        sel = source == i
        if sel.any():
            for b in range(img.shape[0]):  # band by band: no (C, H, W) temporary
                np.copyto(out[b], img[b], where=sel)
        del img
    return out


def merge(images: np.ndarray, quality: np.ndarray, valid: np.ndarray,
          cloudy_pct: Sequence[float], params: MosaicParams = DEFAULT_PARAMS,
          poor: np.ndarray | None = None) -> MergeResult:
    """Image merging module: (N, 13, H, W) uint16 images into one cloud-free mosaic.

    ``poor`` ((N, H, W) bool) defaults to :func:`poor_mask` of ``quality``.
    """
    if poor is None:
        poor = poor_mask(quality, params)
    source, best = merge_sources(quality, valid, cloudy_pct, params, poor)
    mosaic = assemble(images, source)
    return MergeResult(mosaic, source, final_poor_share(source, poor), best)


def final_poor_share(source: np.ndarray, poor: np.ndarray) -> float:
    """Share of covered pixels whose chosen source is poor there. ``poor`` is (N, H, W)."""
    idx = np.clip(source, 0, None)[None]
    return poor_share_of(source, np.take_along_axis(poor, idx.astype(np.intp), axis=0)[0])


def poor_share_of(source: np.ndarray, chosen_poor: np.ndarray) -> float:
    """Share of covered pixels (``source >= 0``) that ``chosen_poor`` (H, W) marks poor."""
    covered = source >= 0
    if not covered.any():
        return 0.0
    return float((chosen_poor & covered).sum()) / float(covered.sum())
