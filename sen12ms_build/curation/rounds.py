"""Automatic versions of the paper's two inspection rounds (section 3.3).

The SEN12MS authors looked at every scene triplet (first round, before tiling) and at every
patch triplet (second round, after tiling) and threw out very large no-data areas, clouds the
mosaic missed, mosaicking artefacts, SAR stripes and other distortions. Here each of those
is a *check*: a pure numpy function that measures one value on the arrays of a scene or a
patch, compared with a threshold from :class:`config.CurationConfig` (``scene_max_<key>``
in the scene round, ``patch_max_<key>`` in the patch round). A value above its threshold
rejects; the first failing check in :data:`CHECKS` order (no-data, the mosaic's own poor
mask, direct sensor faults, then the inferred seam and haze) is the decision's ``reason``, and
every measured value goes to ``scenes.csv`` / ``manifest.csv`` (one column per check).

Array inputs: modality key -> (C, H, W) array as written by the warp (``s1`` float32 sigma0
dB, NaN nodata; ``s2`` uint16 L1C DN, 0 in all bands nodata; ``lc`` uint16 classes, 255
nodata); optional ``aux`` (2, H, W) uint8: band 1 the mosaic's source image index, band 2
its poor-pixel mask (1 poor, 0 clear; 255 nodata in both).

The scene round measures a scene tile by tile (:data:`SCENE_TILE` pixels, bounded memory)
and combines the tiles: shares as pixel-weighted means (exact), the seam step from the
boundary samples of the whole scene (:func:`seam_scene_step`: a scene fails for a seam that
runs along its boundaries, not for one local edge). It also measures the scene's blue dark-object
floors (``s2_dark_floor`` over land, ``s2_dark_floor_water`` over water), the reference
the ``haze`` check of both rounds compares with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..config import CurationConfig
from ..products import ALL_MODALITIES, S2_BANDS, band_index  # noqa: F401  (S2_BANDS: tests)

Decision = tuple[bool, str, dict[str, float]]
Arrays = Mapping[str, np.ndarray]
Context = Mapping[str, float]

ROUNDS = ("scene", "patch")
#: Scene round tile size (pixels): each tile is measured on its own and the values combined.
SCENE_TILE = 512

# --- constants of the checks (physical limits, not thresholds) ------------------------------
#: L1C DN per unit of top-of-atmosphere reflectance.
S2_SCALE = 10000.0
#: DN at or above which an L1C pixel counts as saturated (65535 is L1C's SATURATED value;
#: a reflectance of 2 is beyond any real surface or cloud, and catches warp-blended edges).
SATURATION_DN = 20000
#: Bands whose mean brightness the seam check compares across source boundaries.
SEAM_BANDS = ("B2", "B3", "B4", "B8", "B11", "B12")
#: The seam check compares pixels 3 apart across a boundary (2 pixels of one source, then 2
#: of the other: the bilinear warp blends only the two pixels at the boundary).
SEAM_GAP = 3
#: A source pair needs this many compared pixel pairs (~ a 320 m boundary) to count.
SEAM_MIN_PAIRS = 32
#: Constant-stripe detection: a run of this many pixels along a row or column whose
#: neighbours differ by at most STRIPE_TOL_DB in both bands (speckle never does that).
STRIPE_RUN = 16
STRIPE_TOL_DB = 1e-3
#: Plausible Sentinel-1 GRD sigma0 (dB) and the largest plausible excess of VH over VV.
S1_MIN_DB, S1_MAX_DB = -50.0, 25.0
S1_MAX_VH_OVER_VV_DB = 6.0
#: Border noise: valid pixels this close (pixels) to S1 no-data whose local (5 x 5) mean VV
#: lies below this noise floor (dB).
BORDER_PX = 50
NOISE_FLOOR_DB = -28.0
#: Haze: blocks of HAZE_BLOCK x HAZE_BLOCK pixels; a block's dark-object floor is the
#: HAZE_PERCENTILE-th percentile of its clear B2 reflectance; the scene's floor the
#: HAZE_REFERENCE-th percentile of its block floors.
HAZE_BLOCK = 32
HAZE_PERCENTILE = 5.0
HAZE_REFERENCE = 25.0
MIN_REFERENCE_BLOCKS = 8


# --- the checks (pure functions) ---------------------------------------------------------

def nodata_share(key: str, arr: np.ndarray) -> float:
    """Share of no-data pixels (0..1), see :meth:`products.Modality.nodata_mask`."""
    if arr.size == 0:
        return 1.0
    return float(ALL_MODALITIES[key].nodata_mask(arr).mean())


def poor_share(aux: np.ndarray) -> float:
    """Share of covered pixels that the mosaic marks poor (cloud or shadow) (0..1)."""
    poor = aux[1]
    covered = poor != 255
    if not covered.any():
        return 0.0
    return float((poor[covered] == 1).mean())


def poor_blob_share(aux: np.ndarray) -> float:
    """Largest 8-connected region of poor (cloud or shadow) pixels, as a share of the
    covered pixels (0..1): a compact residual cloud, which a person sees in the quicklook,
    where :func:`poor_share` cannot tell it from the same share of scattered false alarms
    (bright sand, single dark pixels)."""
    from scipy import ndimage

    poor = aux[1] == 1
    covered = aux[1] != 255
    if not poor.any() or not covered.any():
        return 0.0
    labels, n = ndimage.label(poor, structure=np.ones((3, 3), bool))
    largest = np.bincount(labels.ravel())[1:].max() if n else 0
    return float(largest) / float(covered.sum())


def _s2_valid(s2: np.ndarray) -> np.ndarray:
    return np.any(s2 != 0, axis=0)


def _s1_valid(s1: np.ndarray) -> np.ndarray:
    return ~np.any(np.isnan(s1), axis=0)


def saturated_share(s2: np.ndarray) -> float:
    """Share of valid S2 pixels with any band at or above :data:`SATURATION_DN` (0..1)."""
    valid = _s2_valid(s2)
    n = int(valid.sum())
    if n == 0:
        return 0.0
    sat = np.any(s2 >= SATURATION_DN, axis=0) & valid
    return float(sat.sum()) / n


def seam_samples(s2: np.ndarray, aux: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brightness steps across the S2 mosaic's source-image boundaries.

    Across every horizontal or vertical boundary between source images a and b (two clear,
    valid pixels of a, then two of b; the bilinear warp blends only the two at the
    boundary), the log-ratio of the mean brightness (:data:`SEAM_BANDS`) of the outer two
    pixels (:data:`SEAM_GAP` apart), oriented from the lower source index to the higher.
    Returns (pair keys ``lo * 256 + hi``, log-ratios), both 1-D.
    """
    src = aux[0].astype(np.int32)
    ok = (src != 255) & (aux[1] == 0) & _s2_valid(s2)
    bands = [band_index(s2.shape[0], b) for b in SEAM_BANDS]
    bright = np.log(np.maximum(s2[bands].astype(np.float32).mean(axis=0), 1.0))
    keys, diffs = [], []
    g = SEAM_GAP
    for axis in (0, 1):
        s = np.moveaxis(src, axis, -1)
        o = np.moveaxis(ok, axis, -1)
        v = np.moveaxis(bright, axis, -1)
        a, a1 = s[..., :-g], s[..., 1:1 - g]
        b1, b = s[..., g - 1:-1], s[..., g:]
        sel = (a == a1) & (b == b1) & (a != b) & o[..., :-g] & o[..., g:]
        if not sel.any():
            continue
        ai, bi = a[sel], b[sel]
        d = v[..., g:][sel] - v[..., :-g][sel]
        keys.append(np.minimum(ai, bi) * 256 + np.maximum(ai, bi))
        diffs.append(np.where(ai < bi, d, -d))
    if not keys:
        return np.zeros(0, np.int32), np.zeros(0, np.float32)
    return np.concatenate(keys), np.concatenate(diffs)


def seam_step_of(keys: np.ndarray, diffs: np.ndarray,
                 min_pairs: int = SEAM_MIN_PAIRS) -> float:
    """``exp(max |median|) - 1`` over the source pairs with at least ``min_pairs`` samples
    (:func:`seam_samples`); 0 without any."""
    best = 0.0
    for key in np.unique(keys):
        dk = diffs[keys == key]
        if dk.size >= min_pairs:
            best = max(best, abs(float(np.median(dk))))
    return math.expm1(best)


def seam_scene_step(keys: np.ndarray, diffs: np.ndarray,
                    min_pairs: int = SEAM_MIN_PAIRS) -> float:
    """The scene round's seam step: per source pair the median log-ratio as in
    :func:`seam_step_of`, averaged over the pairs weighted by their boundary length, so a
    seam that runs along the scene's boundaries counts and a local cloud or shadow edge
    (a short boundary of its own) hardly does. ``exp(mean) - 1``."""
    total = weighted = 0.0
    for key in np.unique(keys):
        dk = diffs[keys == key]
        if dk.size >= min_pairs:
            total += dk.size
            weighted += dk.size * abs(float(np.median(dk)))
    return math.expm1(weighted / total) if total else 0.0


def seam_step(s2: np.ndarray, aux: np.ndarray, min_pairs: int = SEAM_MIN_PAIRS) -> float:
    """Radiometric step of the S2 mosaic along its source-image boundaries (relative, >= 0):
    0.25 for a 25 % brightness jump between two source images; 0 when there is no
    boundary of at least ``min_pairs`` samples.

    Natural texture differs on both sides of a boundary symmetrically, so the median of the
    oriented log-ratios (:func:`seam_samples`) per source pair stays near 0 unless one
    image is systematically brighter: a radiometric seam, or a cloud or shadow edge the
    mosaic cut along without knowing it.
    """
    return seam_step_of(*seam_samples(s2, aux), min_pairs)


def _flat_runs(flat: np.ndarray, run: int) -> np.ndarray:
    """Pixels covered by ``run`` or more consecutive pixels along the last axis whose
    neighbour pairs are all flat; ``flat`` is (..., W - 1) over neighbour pairs."""
    n = run - 1
    c = np.concatenate([np.zeros(flat.shape[:-1] + (1,), np.int32),
                        np.cumsum(flat, axis=-1, dtype=np.int32)], axis=-1)
    full = (c[..., n:] - c[..., :-n]) == n  # pair windows start k..: pixels k..k+n
    cover = np.zeros(flat.shape[:-1] + (flat.shape[-1] + 2,), np.int32)
    cover[..., :full.shape[-1]] += full
    cover[..., run:run + full.shape[-1]] -= full
    return np.cumsum(cover, axis=-1)[..., :flat.shape[-1] + 1] > 0


def s1_stripe_share(s1: np.ndarray) -> float:
    """Share of valid S1 pixels inside constant stripes (0..1): runs of at least
    :data:`STRIPE_RUN` pixels along a row or a column with both bands constant to
    :data:`STRIPE_TOL_DB` (zero-filled or constant bursts, missing lines). Speckle makes real
    backscatter differ between neighbours, so natural targets never form such runs."""
    valid = _s1_valid(s1)
    n = int(valid.sum())
    if n == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        flat_r = np.all(np.abs(np.diff(s1, axis=2)) <= STRIPE_TOL_DB, axis=0)
        flat_c = np.all(np.abs(np.diff(s1, axis=1)) <= STRIPE_TOL_DB, axis=0)
    stripe = _flat_runs(flat_r, STRIPE_RUN) | _flat_runs(flat_c.T, STRIPE_RUN).T
    return float((stripe & valid).sum()) / n


def s1_range_share(s1: np.ndarray) -> float:
    """Share of valid S1 pixels with implausible sigma0 (0..1): a band outside
    [:data:`S1_MIN_DB`, :data:`S1_MAX_DB`] dB (zero power, calibration blow-ups) or VH above
    VV by more than :data:`S1_MAX_VH_OVER_VV_DB` (swapped or broken polarisations)."""
    valid = _s1_valid(s1)
    n = int(valid.sum())
    if n == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        bad = np.any((s1 < S1_MIN_DB) | (s1 > S1_MAX_DB), axis=0)
        bad |= (s1[1] - s1[0]) > S1_MAX_VH_OVER_VV_DB
    return float((bad & valid).sum()) / n


def s1_border_share(s1: np.ndarray) -> float:
    """Share of valid S1 pixels that look like GRD border noise (0..1): within
    :data:`BORDER_PX` pixels of S1 no-data and with a local 5 x 5 mean VV (linear power)
    below :data:`NOISE_FLOOR_DB`. Without no-data in the array it is 0."""
    from scipy import ndimage

    valid = _s1_valid(s1)
    n = int(valid.sum())
    if n == 0 or valid.all():
        return 0.0
    near = ndimage.distance_transform_edt(valid) <= BORDER_PX
    lin = np.where(valid, np.power(10.0, np.nan_to_num(s1[0], nan=-100.0) / 10.0), 0.0)
    num = ndimage.uniform_filter(lin, 5, mode="nearest")
    den = ndimage.uniform_filter(valid.astype(np.float64), 5, mode="nearest")
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_db = 10.0 * np.log10(num / den)
    low = near & valid & (mean_db < NOISE_FLOOR_DB)
    return float(low.sum()) / n


def block_floors(s2: np.ndarray, aux: np.ndarray | None = None,
                 block: int = HAZE_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Blue dark-object floor per block and whether the block is water.

    Returns (floors, water), each (H // block, W // block): the :data:`HAZE_PERCENTILE`-th
    percentile of B2 top-of-atmosphere reflectance over the clear, valid pixels of each
    ``block`` x ``block`` block (float64, NaN for blocks less than half clear), and True
    where most of those pixels have NDVI (B8, B4) below 0 (open water, whose clear floor
    differs from land's).
    """
    h, w = s2.shape[1] // block, s2.shape[2] // block
    if h == 0 or w == 0:
        return np.full((h, w), np.nan), np.zeros((h, w), bool)
    sub = s2[:, :h * block, :w * block]
    ok = _s2_valid(sub)
    if aux is not None:
        ok &= aux[1, :h * block, :w * block] == 0
    n = s2.shape[0]
    b2 = np.where(ok, sub[band_index(n, "B2")].astype(np.float64) / S2_SCALE, np.nan)
    nir = sub[band_index(n, "B8")].astype(np.float64)
    red = sub[band_index(n, "B4")].astype(np.float64)
    wet = (nir < red) & ok

    def blocks(x: np.ndarray) -> np.ndarray:
        return x.reshape(h, block, w, block).transpose(0, 2, 1, 3).reshape(h, w, -1)

    n_ok = blocks(ok).sum(axis=2)
    enough = n_ok >= block * block // 2
    floors = np.full((h, w), np.nan)
    if enough.any():
        floors[enough] = np.nanpercentile(blocks(b2)[enough], HAZE_PERCENTILE, axis=1)
    water = blocks(wet).sum(axis=2) * 2 > np.maximum(n_ok, 1)
    return floors, water


def dark_floor(floors: np.ndarray) -> float:
    """A clear-sky blue floor: the :data:`HAZE_REFERENCE`-th percentile of block floors
    (reflectance); NaN without any."""
    f = floors[np.isfinite(floors)]
    return float(np.percentile(f, HAZE_REFERENCE)) if f.size else float("nan")


def dark_floors(floors: np.ndarray, water: np.ndarray) -> dict[str, float]:
    """The scene's clear floors: ``s2_dark_floor`` over land blocks and
    ``s2_dark_floor_water`` over water blocks (each only when at least
    :data:`MIN_REFERENCE_BLOCKS` blocks of that kind exist)."""
    out = {}
    for key, sel in (("s2_dark_floor", ~water), ("s2_dark_floor_water", water)):
        f = floors[sel & np.isfinite(floors)]
        if f.size >= MIN_REFERENCE_BLOCKS:
            out[key] = dark_floor(f)
    return out


def haze_share_of_floors(floors: np.ndarray, water: np.ndarray, reference: Context,
                         margin: float) -> float:
    """Share of blocks whose floor lies more than ``margin`` above the clear floor of
    their kind (``reference``: :func:`dark_floors`; a kind without its own floor uses the
    other's) (0..1)."""
    land = reference.get("s2_dark_floor", reference.get("s2_dark_floor_water", np.nan))
    wet = reference.get("s2_dark_floor_water", land)
    ref = np.where(water, wet, land)
    ok = np.isfinite(floors) & np.isfinite(ref)
    if not ok.any():
        return 0.0
    return float((floors[ok] > ref[ok] + margin).mean())


def haze_share(s2: np.ndarray, aux: np.ndarray | None, reference: Context,
               margin: float) -> float:
    """Share of the array's blocks veiled by haze or thin cloud (0..1).

    A veil adds its own reflectance on top of the ground, so it lifts the darkest pixels:
    water, dense vegetation and shadows, which in clear sky sit near the atmosphere's path
    reflectance in the blue band. A block counts as hazy when its dark-object floor
    (:func:`block_floors`) exceeds the scene's clear floor for its kind (land or water,
    ``reference`` from :func:`dark_floors`) by more than ``margin`` (reflectance). Blind to
    haze over surfaces without dark objects and to haze covering most of a scene (it lifts
    the reference too); bright blocks without any dark pixel (wide sand, snow, bright roofs)
    can be taken for haze.
    """
    floors, water = block_floors(s2, aux)
    return haze_share_of_floors(floors, water, reference, margin)


# --- the registry --------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One check of the inspection rounds.

    Attributes:
        name: column in ``scenes.csv`` / ``manifest.csv`` and the decision's ``reason``.
        rounds: the rounds it runs in (``scene``, ``patch``).
        key: threshold key: ``CurationConfig.scene_max_<key>`` / ``patch_max_<key>``.
        units: of the measured value.
        needs: array keys it needs (skipped, value empty, when one is missing).
        measure: (arrays, scene context) -> value.
        weight: (arrays) -> the value's denominator, for the scene round's pixel-weighted
            mean over tiles; None for ``haze`` and ``seam``, which the scene round measures
            on the whole scene (:func:`measure_scene`).
        sees: what it detects (for the docs and the review page).
    """

    name: str
    rounds: tuple[str, ...]
    key: str
    units: str
    needs: tuple[str, ...]
    measure: Callable[[Arrays, Context], float]
    weight: Callable[[Arrays], float] | None
    sees: str

    def threshold(self, cfg: CurationConfig, round_: str) -> float:
        return float(getattr(cfg, f"{round_}_max_{self.key}"))


def _area(a: Arrays) -> float:
    first = next(iter(a.values()))
    return float(first.shape[-1] * first.shape[-2])


def _count(key: str) -> Callable[[Arrays], float]:
    def weight(a: Arrays) -> float:
        if key == "aux":
            return float((a["aux"][1] != 255).sum())
        if key == "s2":
            return float(_s2_valid(a["s2"]).sum())
        return float(_s1_valid(a["s1"]).sum())
    return weight


def _nodata(key: str) -> Check:
    return Check(f"nodata_{key}", ROUNDS, "nodata_share", "share", (key,),
                 lambda a, _c: nodata_share(key, a[key]), _area,
                 f"no-data pixels in {key}" + (" (class 255)" if key == "lc" else ""))


def _labels_nodata(key: str) -> Check:
    """The no-data check of an added label modality (``wc``, ``dw``): a labels patch that
    is mostly without classes (outside the product's coverage, no Dynamic World image) is
    a defect; threshold ``labels_nodata_share``."""
    return Check(f"nodata_{key}", ROUNDS, "labels_nodata_share", "share", (key,),
                 lambda a, _c: nodata_share(key, a[key]), _area,
                 f"pixels without a class in the 10 m labels ({key})")


def _haze(a: Arrays, ctx: Context) -> float:
    return haze_share(a["s2"], a.get("aux"), ctx, ctx.get("haze_floor_margin", 0.05))


CHECKS: tuple[Check, ...] = (
    _nodata("s2"), _nodata("s1"), _nodata("lc"),
    Check("poor", ROUNDS, "poor_share", "share", ("aux",), lambda a, _c: poor_share(a["aux"]),
          _count("aux"), "cloud and shadow the mosaic knows it kept (its quality score)"),
    Check("poor_blob", ("patch",), "poor_blob_share", "share", ("aux",),
          lambda a, _c: poor_blob_share(a["aux"]), _count("aux"),
          "a compact residual cloud or shadow: the largest connected poor region"),
    Check("saturated", ROUNDS, "saturated_share", "share", ("s2",),
          lambda a, _c: saturated_share(a["s2"]), _count("s2"),
          "saturated or impossible S2 values (DN >= 20000)"),
    Check("s1_stripe", ROUNDS, "s1_stripe_share", "share", ("s1",),
          lambda a, _c: s1_stripe_share(a["s1"]), _count("s1"),
          "zero or constant stripes in the SAR image"),
    Check("s1_range", ROUNDS, "s1_range_share", "share", ("s1",),
          lambda a, _c: s1_range_share(a["s1"]), _count("s1"),
          "implausible sigma0: outside -50..25 dB or VH > VV + 6 dB"),
    Check("s1_border", ROUNDS, "s1_border_share", "share", ("s1",),
          lambda a, _c: s1_border_share(a["s1"]), _count("s1"),
          "GRD border noise: below the noise floor next to the image edge"),
    Check("seam", ROUNDS, "seam_step", "relative step", ("s2", "aux"),
          lambda a, _c: seam_step(a["s2"], a["aux"]), None,
          "mosaicking seams: brightness steps along the source-image boundaries"),
    Check("haze", ROUNDS, "haze_share", "share of 320 m blocks", ("s2",), _haze, None,
          "thin cloud and haze the cloud score missed: blue dark-object floor above the "
          "scene's"),
    # the 10 m labels of a run with ``labels:`` (measured only when the patch has them)
    _labels_nodata("wc"), _labels_nodata("dw"),
)
#: The checks of the paper's triplet (the columns every manifest has); the others measure
#: a modality a run may add (:data:`layout.EXTRA_DATA_IDS`).
TRIPLET_CHECK_NAMES: tuple[str, ...] = tuple(c.name for c in CHECKS if c.name not in
                                             ("nodata_wc", "nodata_dw"))
CHECK_NAMES: tuple[str, ...] = tuple(c.name for c in CHECKS)
#: Scene values that are not checks but context of the patch round (and shown in scenes.csv).
CONTEXT_NAMES: tuple[str, ...] = ("s2_dark_floor", "s2_dark_floor_water")


def get_check(name: str) -> Check:
    for c in CHECKS:
        if c.name == name:
            return c
    raise KeyError(f"unknown check {name!r}; known: {', '.join(CHECK_NAMES)}")


def _context(cfg: CurationConfig, context: Context | None) -> dict[str, float]:
    return {**(context or {}), "haze_floor_margin": cfg.haze_floor_margin}


def measure(arrays: Arrays, context: Context | None = None,
            round_: str = "patch") -> dict[str, float]:
    """Every check of a round that has its inputs: name -> value (rounded to 1e-6)."""
    ctx = {"haze_floor_margin": 0.05, **(context or {})}
    values = {}
    for c in CHECKS:
        if round_ in c.rounds and all(k in arrays for k in c.needs):
            if c.name == "haze" and not any(k in ctx for k in CONTEXT_NAMES):
                continue
            values[c.name] = round(float(c.measure(arrays, ctx)), 6)
    return values


def decide(values: Mapping[str, float], cfg: CurationConfig, round_: str) -> Decision:
    """(keep, deciding check, values): the first check in :data:`CHECKS` order whose value
    exceeds its threshold rejects."""
    vals = dict(values)
    for c in CHECKS:
        if round_ in c.rounds and c.name in vals and vals[c.name] > c.threshold(cfg, round_):
            return False, c.name, vals
    return True, "", vals


def patch_decision(arrays: Arrays, cfg: CurationConfig,
                   context: Context | None = None) -> Decision:
    """Patch round: (keep, deciding check, values). ``context``: the scene round's values
    (``s2_dark_floor`` for the haze check)."""
    return decide(measure(arrays, _context(cfg, context), "patch"), cfg, "patch")


def measure_scene(paths: Mapping[str, Path], cfg: CurationConfig | None = None,
                  tile: int = SCENE_TILE) -> dict[str, float]:
    """Every scene-round value over whole scene files, tile by tile (bounded memory):
    shares are pixel-weighted means over the tiles, the seam step pools the boundary
    samples of every tile; ``s2_dark_floor``/``s2_dark_floor_water`` (reflectance) and
    ``haze`` come from the block floors of the whole scene."""
    import rasterio
    from rasterio.windows import Window

    cfg = cfg or CurationConfig()
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    floors_rows: list[tuple[np.ndarray, np.ndarray]] = []
    seams: list[tuple[np.ndarray, np.ndarray]] = []
    srcs = {k: rasterio.open(p) for k, p in paths.items()}
    try:
        first = next(iter(srcs.values()))
        height, width = first.height, first.width
        for r0 in range(0, height, tile):
            h = min(tile, height - r0)
            strip = {k: s.read(window=Window(0, r0, width, h)) for k, s in srcs.items()}
            if "s2" in strip:
                floors_rows.append(block_floors(strip["s2"], strip.get("aux")))
            for c0 in range(0, width, tile):
                arrays = {k: a[:, :, c0:c0 + tile] for k, a in strip.items()}
                if "s2" in arrays and "aux" in arrays:
                    seams.append(seam_samples(arrays["s2"], arrays["aux"]))
                for c in CHECKS:
                    if c.name in ("haze", "seam") or "scene" not in c.rounds:
                        continue
                    if not all(k in arrays for k in c.needs):
                        continue
                    v = float(c.measure(arrays, {}))
                    w = c.weight(arrays) if c.weight else _area(arrays)
                    sums[c.name] = sums.get(c.name, 0.0) + v * w
                    weights[c.name] = weights.get(c.name, 0.0) + w
    finally:
        for s in srcs.values():
            s.close()
    values: dict[str, float] = {}
    for c in CHECKS:
        if c.name in weights:
            w = weights[c.name]
            default = 1.0 if c.name.startswith("nodata_") else 0.0
            values[c.name] = round(sums[c.name] / w, 6) if w else default
    if seams:
        values["seam"] = round(seam_scene_step(np.concatenate([k for k, _ in seams]),
                                               np.concatenate([d for _, d in seams])), 6)
    if floors_rows:
        floors = np.concatenate([f.ravel() for f, _ in floors_rows])
        water = np.concatenate([w.ravel() for _, w in floors_rows])
        refs = dark_floors(floors, water)
        if refs:
            values.update({k: round(v, 6) for k, v in refs.items()})
            values["haze"] = round(haze_share_of_floors(floors, water, refs,
                                                        cfg.haze_floor_margin), 6)
    return {k: values[k] for k in (*CHECK_NAMES, *CONTEXT_NAMES) if k in values}


def scene_decision_from_files(paths: Mapping[str, Path], cfg: CurationConfig) -> Decision:
    """Scene round on scene files: (keep, deciding check, values incl. context)."""
    values = measure_scene(paths, cfg)
    keep, reason, _ = decide({k: v for k, v in values.items() if k in CHECK_NAMES}, cfg,
                             "scene")
    return keep, reason, values


def thresholds(cfg: CurationConfig, round_: str) -> dict[str, float]:
    """Check name -> threshold of a round."""
    return {c.name: c.threshold(cfg, round_) for c in CHECKS if round_ in c.rounds}
