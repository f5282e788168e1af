"""Real clouds for the demo: cloud shapes and 13-band spectra of a real Sentinel-2 L1C array.

Source: ``s2cloudless/TestInputs/input_arrays.npz`` of the ``s2cloudless`` 1.2.1 source
distribution on PyPI (Sinergise, CC BY-SA 4.0): ``s2_im``, a (1, 856, 512, 13) float32
top-of-atmosphere reflectance array of a real, partly cloudy L1C scene, without
georeference. ``scripts/make_real_clouds.py`` derives the small fixture
``sen12ms_build/demo/data/real_clouds.npz`` from it (``data/README.md``):

* ``alpha`` (856, 512) uint8: the cloud's opacity, 0..255 for 0..1;
* ``refl`` (13, 856, 512) uint16: the real pixel's reflectance x 1000 (:data:`REFL_SCALE`)
  where ``alpha > 0``, else 0.

**Opacity (the truth's definition).** ``alpha = clip(HOT / HOT_OPAQUE, 0, 1)`` with the
haze-optimized transform ``HOT = B2 - 0.5 * B4 - 0.08`` (Zhang, Guindon & Cihlar 2002,
Remote Sensing of Environment 82: clear land and water lie on a blue-red "clear line";
haze and cloud lift the blue band above it). ``HOT_OPAQUE = 0.06``. It is a documented
reflectance rule, independent of the detectors under test: neither the paper's cloud score
(:mod:`sen12ms_build.mosaic`) nor the s2cloudless model is consulted. Cloud truth is
``alpha >= 0.5`` (:data:`~sen12ms_build.demo.clouds.CLOUD_TRUTH_ALPHA`), 25 % of the real
array; the s2cloudless mask shipped in the same file flags 99.9 % of it and more haze
around (46 % in all).

**Carrying the clouds onto the demo ground.** The real array is mirror-tiled over the
scene with a per-acquisition flip, transpose and offset (seeded). A demo pixel becomes
``(1 - alpha) * ground + alpha * real``: the real pixel's 13-band spectrum laid over the
demo ground with the cloud's opacity (where ``alpha`` is 1 the pixel is the real cloud's
spectrum exactly; thin parts keep some of the real scene's own ground, as a real thin cloud
would show). Shadows are injected like the synthetic clouds' (same transmittance): every
connected cloud of the real array gets a height (seeded, 1-3 km, in four levels) and its
opacity is displaced with the demo's own solar geometry (:mod:`.solar`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from .clouds import CLOUD_TRUTH_ALPHA
from .ground import DemoDataError
from .plan import SEED_CLOUDS
from .solar import shadow_shift_px

#: The derived fixture (package data).
REAL_CLOUDS_FILE = Path(__file__).resolve().parent / "data" / "real_clouds.npz"
#: Where the fixture comes from.
SOURCE = ("s2cloudless 1.2.1 sdist (PyPI), s2cloudless/TestInputs/input_arrays.npz, "
          "Sinergise, CC BY-SA 4.0")
#: Reflectance quantisation of the fixture (reflectance = refl / REFL_SCALE).
REFL_SCALE = 1000.0
#: HOT at which a pixel counts as fully opaque cloud.
HOT_OPAQUE = 0.06
#: Cloud heights of the real clouds (m): one per connected cloud, drawn among these levels.
REAL_HEIGHTS_M = (1000.0, 1600.0, 2300.0, 3000.0)


def hot(refl: np.ndarray) -> np.ndarray:
    """Haze-optimized transform of (13, H, W) reflectance (S2 band order): B2 - 0.5 B4 - 0.08."""
    return refl[1] - 0.5 * refl[3] - 0.08


def hot_opacity(refl: np.ndarray) -> np.ndarray:
    """(H, W) float32 cloud opacity in [0, 1] of (13, H, W) reflectance (module docstring)."""
    return np.clip(hot(refl) / HOT_OPAQUE, 0.0, 1.0).astype(np.float32)


def derive_fixture(source_npz: Path, out: Path) -> dict[str, float]:
    """Write :data:`REAL_CLOUDS_FILE`'s content from the s2cloudless test array; returns
    figures (cloud cover of the truth, agreement with the s2cloudless mask in the file)."""
    z = np.load(source_npz)
    refl = np.moveaxis(z["s2_im"][0].astype(np.float32), -1, 0)  # (13, H, W)
    alpha = hot_opacity(refl)
    a8 = np.rint(alpha * 255.0).astype(np.uint8)
    q = np.rint(refl * REFL_SCALE).astype(np.uint16)
    q[:, a8 == 0] = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, alpha=a8, refl=q)
    truth = a8 >= round(CLOUD_TRUTH_ALPHA * 255)
    s2c = z["cl_mask"][0].astype(bool)
    return {"cloud_cover": float(truth.mean()), "opacity_above_0": float((a8 > 0).mean()),
            "s2cloudless_mask_cover": float(s2c.mean()),
            "share_of_truth_in_s2cloudless_mask": float((truth & s2c).sum() / truth.sum())}


@dataclass(frozen=True)
class RealClouds:
    """The fixture in memory: opacity (H, W) float32, reflectance (13, H, W) float32 and
    height (H, W) float32 (0 where there is no cloud)."""

    alpha: np.ndarray
    refl: np.ndarray
    height: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.alpha.shape  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def load_real_clouds(path: Path = REAL_CLOUDS_FILE) -> RealClouds:
    """The fixture, with a height per connected cloud (seeded, :data:`REAL_HEIGHTS_M`)."""
    if not path.exists():
        raise DemoDataError(f"{path} is missing: the real clouds fixture ships with the "
                            "package; rebuild it with: python scripts/make_real_clouds.py")
    with np.load(path) as z:
        alpha = z["alpha"].astype(np.float32) / np.float32(255.0)
        refl = z["refl"].astype(np.float32) / np.float32(REFL_SCALE)
    labels, n = ndimage.label(alpha > 0, structure=np.ones((3, 3), bool))
    levels = np.random.default_rng([SEED_CLOUDS, 4242]).integers(0, len(REAL_HEIGHTS_M), n + 1)
    heights = np.asarray(REAL_HEIGHTS_M, np.float32)[levels]
    heights[0] = 0.0
    return RealClouds(alpha, refl, heights[labels])


def _mirror(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices into a length-``n`` axis of its mirror tiling (… n-1 … 0 0 … n-1 n-1 …)."""
    m = np.mod(idx, 2 * n)
    return np.where(m < n, m, 2 * n - 1 - m)


def field_indices(index: int, rows: np.ndarray, cols: np.ndarray,
                  shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Source (row, col) of full-scene pixels (``rows`` (h, 1), ``cols`` (1, w)) in the
    real array of ``shape`` for acquisition ``index``, and whether the field is transposed.
    Deterministic from ``index``; independent of any crop."""
    rng = np.random.default_rng([SEED_CLOUDS, index, 77])
    transpose = bool(rng.integers(2))
    h, w = shape if not transpose else shape[::-1]
    r_off, c_off = int(rng.integers(2 * h)), int(rng.integers(2 * w))
    sr, sc = _mirror(rows + r_off, h), _mirror(cols + c_off, w)
    return sr, sc, transpose


def real_cloud_layers(index: int, window: tuple[int, int, int, int], azimuth: float,
                      zenith: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                              list[float]]:
    """Real clouds of acquisition ``index`` on a window of the scene.

    Returns:
        alpha: (h, w) float64 cloud opacity in [0, 1].
        shade: (h, w) float64 shadow opacity in [0, 1] (as the synthetic clouds': full
            where the displaced cloud is cloud truth).
        displaced: (h, w) bool, union of the displaced cloud truth.
        refl: (13, h, w) float32 reflectance of the real pixel under each window pixel.
        heights: the cloud heights (m) whose cloud or shadow touches the window.
    """
    rc = load_real_clouds()
    r0, c0, h, w = window
    shifts = {hm: shadow_shift_px(azimuth, zenith, hm) for hm in REAL_HEIGHTS_M}
    pad = max(max(abs(dr), abs(dc)) for dr, dc in shifts.values())
    rows = np.arange(r0 - pad, r0 + h + pad)[:, None]
    cols = np.arange(c0 - pad, c0 + w + pad)[None, :]
    sr, sc, transpose = field_indices(index, rows, cols, rc.shape)

    def take(a: np.ndarray) -> np.ndarray:
        return a[..., sc, sr] if transpose else a[..., sr, sc]

    alpha_x = take(rc.alpha).astype(np.float64)  # (h + 2 pad, w + 2 pad)
    height_x = take(rc.height)
    inner = (slice(pad, pad + h), slice(pad, pad + w))
    lit = np.ones((h, w))
    displaced = np.zeros((h, w), bool)
    heights = []
    for hm, (dr, dc) in shifts.items():
        a = np.where(height_x == hm, alpha_x, 0.0)
        # the shadow at p comes from the cloud at p - shift
        src = a[pad - dr:pad - dr + h, pad - dc:pad - dc + w]
        if a[inner].any() or src.any():
            heights.append(hm)
        lit *= 1.0 - np.minimum(1.0, src / CLOUD_TRUTH_ALPHA)
        displaced |= src >= CLOUD_TRUTH_ALPHA
    alpha = alpha_x[inner]
    refl = take(rc.refl)[:, pad:pad + h, pad:pad + w]
    return alpha, 1.0 - lit, displaced, np.ascontiguousarray(refl), heights
