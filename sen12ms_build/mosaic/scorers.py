"""Pluggable cloud scorers of the quality score module: a registry of plain functions.

Every scorer has the one signature :data:`CloudScorer`::

    scorer(l1c, valid, params) -> score

* ``l1c``: (13, h, w) uint16 Level-1C digital numbers at the score scale
  (``params.score_scale_m``, block means of :func:`sen12ms_build.mosaic.block_mean`), in
  :data:`sen12ms_build.products.S2_BANDS` order; 0 in every band is nodata.
* ``valid``: (h, w) bool footprint.
* ``params``: the :class:`~sen12ms_build.mosaic.MosaicParams` of the run.
* returns: (h, w) **float32 cloud score in [0, 1]**, 0 outside ``valid``, **calibrated so
  that ``score > params.cloud_thresh`` is the scorer's own cloud decision** (for the paper
  score that is its definition; the others map their published threshold onto
  ``cloud_thresh`` with :func:`calibrate`). Everything downstream (shadow projection,
  quality score, poor mask, CLOUDY_PERCENTAGE, merge) is the paper's, unchanged.

Each :class:`ScorerSpec` declares whether its score already includes cloud shadows
(``includes_shadow``: then the paper's shadow score is not added) and which backends can
run it (``backends``); :func:`check_backend` is the capability check the config loader
runs. The Earth Engine expressions of the scorers live in
:mod:`sen12ms_build.backends.earthengine.graphs` (``cloud_band``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import ndimage

from ..errors import Sen12msError
from ..methods import Scorer
from ..products import SCL_PLANE, SCL_POOR_VALUE
from . import s2cloudless_model
from .scores import block_mean, cloud_score, expand, footprint

#: ``scorer(l1c, valid, params) -> (h, w) float32 score in [0, 1]`` (see the module doc).
CloudScorer = Callable[[np.ndarray, np.ndarray, Any], np.ndarray]

#: Bands the s2cloudless model reads, as indices into ``S2_BANDS`` (B1, B2, B4, B5, B8,
#: B8A, B9, B10, B11, B12: ``s2cloudless.utils.MODEL_BAND_IDS``).
S2CLOUDLESS_BANDS = (0, 1, 3, 4, 7, 8, 9, 10, 11, 12)


class ScorerUnavailable(Sen12msError, RuntimeError):
    """A scorer's optional dependency is not installed, or it cannot run here."""


@dataclass(frozen=True)
class ScorerSpec:
    """One registered scorer.

    Attributes:
        name: its :class:`~sen12ms_build.methods.Scorer`.
        fn: the numpy implementation (``None``: no local implementation).
        includes_shadow: the score already flags cloud shadows (the paper's shadow score is
            then skipped).
        backends: backends that can run it (``local``, ``earthengine``).
        summary: one line for help texts and errors.
    """

    name: Scorer
    fn: CloudScorer | None
    includes_shadow: bool
    backends: frozenset[str]
    summary: str


def calibrate(p: np.ndarray, threshold: float, cloud_thresh: float, p_floor: float = 0.0,
              floor: float = 0.0) -> np.ndarray:
    """Map a probability-like score ``p`` in [0, 1] whose own cloud decision is
    ``p > threshold`` onto the paper's scale, piecewise linearly and monotonically:
    ``p <= p_floor`` -> ``floor``, ``threshold`` -> ``cloud_thresh``, 1 -> 1. So
    ``calibrate(p) > cloud_thresh`` exactly when ``p > threshold``; below ``p_floor`` every
    pixel scores the same, as the paper's ``cloud_score_floor``. Returns float32."""
    p = np.clip(np.asarray(p, np.float32), 0.0, 1.0)
    lo = np.float32(floor) + (np.maximum(p, np.float32(p_floor)) - np.float32(p_floor)) * \
        np.float32((cloud_thresh - floor) / (threshold - p_floor))
    hi = np.float32(cloud_thresh) + (p - np.float32(threshold)) * np.float32(
        (1.0 - cloud_thresh) / (1.0 - threshold))
    return np.where(p <= threshold, lo, hi).astype(np.float32)


def paper_score(l1c: np.ndarray, valid: np.ndarray, params: Any) -> np.ndarray:
    """The SEN12MS scripts' cloud score (:func:`sen12ms_build.mosaic.scores.cloud_score`)."""
    return cloud_score(l1c, params, valid)


def s2cloudless_installed() -> bool:
    """Whether the optional ``s2cloudless`` package can be imported (found, not imported)."""
    return importlib.util.find_spec("s2cloudless") is not None


def _s2cloudless_model() -> s2cloudless_model.Predictor:
    if importlib.util.find_spec("s2cloudless") is None:
        raise ScorerUnavailable(
            "mosaic.scorer s2cloudless needs the s2cloudless package: "
            "pip install 'sen12ms-build[s2cloudless]' (or: pip install s2cloudless)")
    return s2cloudless_model.predictor()


def s2cloudless_probability(l1c: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Raw cloud probability of the s2cloudless LightGBM model (weights shipped inside the
    ``s2cloudless`` wheel; nothing is downloaded), compiled once per machine when lleaves
    is installed, else LightGBM's own predict (:mod:`.s2cloudless_model`; the same
    probabilities). The model reads reflectance = DN / 10000 of its 10 bands.

    Args:
        l1c: (13, h, w) uint16 L1C digital numbers.
        valid: (h, w) bool; only these pixels are classified, in blocks that bound memory,
            on :func:`.s2cloudless_model.threads` threads.
    Returns:
        (h, w) float32 probability in [0, 1], 0 outside ``valid``.
    Raises:
        ScorerUnavailable: the s2cloudless package is not installed.
    """
    return s2cloudless_model.probability(l1c, valid, S2CLOUDLESS_BANDS, _s2cloudless_model())


def classification_factor(params: Any) -> int:
    """``s2cloudless_scale_m`` in score-scale pixels (an integer >= 1).

    Raises:
        ValueError: the scale is not a whole multiple of ``score_scale_m``.
    """
    ratio = float(params.s2cloudless_scale_m) / float(params.score_scale_m)
    factor = round(ratio)
    if factor < 1 or abs(ratio - factor) > 1e-9:
        raise ValueError(f"mosaic.s2cloudless_scale_m ({params.s2cloudless_scale_m:g}) must be "
                         f"a whole multiple of mosaic.score_scale_m "
                         f"({params.score_scale_m:g})")
    return factor


def s2cloudless_scaled_probability(l1c: np.ndarray, valid: np.ndarray,
                                   params: Any) -> np.ndarray:
    """:func:`s2cloudless_probability` at ``s2cloudless_scale_m``: the model classifies the
    block means (nodata ignored, :func:`~sen12ms_build.mosaic.scores.block_mean`) of
    :func:`classification_factor` x factor score-scale pixels, and each score-scale pixel
    takes its block's probability (the averaging of :func:`_average_dilate` then smooths
    the block edges). A pixel is a pixel to the model: Sentinel Hub trained it on 10 m
    pixels and runs it on 160 m block means in production (docs/clouds.md).

    Args:
        l1c: (13, h, w) uint16 L1C digital numbers at the score scale.
        valid: (h, w) bool footprint.
    Returns:
        (h, w) float32 probability in [0, 1], 0 outside ``valid``.
    """
    f = classification_factor(params)
    if f == 1:
        return s2cloudless_probability(l1c, valid)
    coarse = block_mean(l1c, f)
    p = s2cloudless_probability(coarse, footprint(coarse))
    return np.where(valid, expand(p, f, valid.shape), np.float32(0)).astype(np.float32)


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return (xx * xx + yy * yy) <= radius * radius


def _average_dilate(p: np.ndarray, valid: np.ndarray, params: Any) -> np.ndarray:
    """The package's post-processing on the probability: mean over the valid pixels of a
    disk of ``s2cloudless_average_px``, then a grey dilation by a disk of
    ``s2cloudless_dilation_px`` (edges: nearest). (h, w) float32 in and out."""
    r = int(params.s2cloudless_average_px)
    if r > 0:
        disk = _disk(r)
        x = np.zeros(p.shape, np.float64)
        np.copyto(x, p, where=valid)
        num = ndimage.convolve(x, disk.astype(np.float64), mode="constant")
        # the valid count under the disk, exact in the smallest integer type that holds it
        count = np.uint8 if disk.sum() <= 255 else np.int32
        den = ndimage.convolve(valid.astype(count), disk.astype(count), mode="constant")
        np.divide(num, den, out=num, where=den > 0)
        num[den == 0] = 0.0
        p = num.astype(np.float32)
    d = int(params.s2cloudless_dilation_px)
    if d > 0:
        p = ndimage.grey_dilation(p, footprint=_disk(d), mode="nearest")
    return p


def s2cloudless_score(l1c: np.ndarray, valid: np.ndarray, params: Any) -> np.ndarray:
    """s2cloudless on the score grid (classified at ``s2cloudless_scale_m``,
    :func:`s2cloudless_scaled_probability`), post-processed as the package's
    ``get_mask_from_prob`` (mean over a disk of ``s2cloudless_average_px``, dilation by a
    disk of ``s2cloudless_dilation_px``; done on the probability, which thresholds the same)
    and mapped with :func:`calibrate`: ``s2cloudless_threshold`` (the package's default
    0.4) onto ``cloud_thresh``, probabilities up to ``s2cloudless_floor`` onto the paper's
    ``cloud_score_floor``."""
    p = _average_dilate(s2cloudless_scaled_probability(l1c, valid, params), valid, params)
    # below s2cloudless_floor every pixel scores the paper's cloud_score_floor: clear pixels
    # tie, so the quality mosaic's ties go to the earliest image instead of to whichever
    # clear image the model finds a hair less cloud-like -- dark cloud shadows on water
    # (invisible to the shadow test) look least cloud-like of all
    score = calibrate(p, params.s2cloudless_threshold, params.cloud_thresh,
                      params.s2cloudless_floor, params.cloud_score_floor)
    return np.where(valid, score, np.float32(0)).astype(np.float32)


#: The ``scl`` scorer's cloud decision: a score-scale block is poor when more than this
#: share of its pixels carries a poor SCL class (SCL is a 20 m product, as the score scale;
#: a block straddling two SCL pixels is poor when most of it is).
SCL_POOR_SHARE = 0.5


def scl_score(l1c: np.ndarray, valid: np.ndarray, params: Any) -> np.ndarray:
    """Level-2A scene classification as a cloud score: the share of each block's pixels in a
    poor SCL class (:data:`sen12ms_build.products.SCL_POOR_CLASSES`: cloud shadow, cloud
    medium and high probability, thin cirrus), mapped with :func:`calibrate` so that a share
    above :data:`SCL_POOR_SHARE` scores above ``cloud_thresh``. SCL already holds cloud
    shadows, so the paper's shadow score is not added (``includes_shadow``).

    ``l1c`` carries the SCL plane at :data:`sen12ms_build.products.SCL_PLANE` (the ``stac``
    backend's Level-2A reader adds it).

    Raises:
        ScorerUnavailable: the image has no SCL plane (not Level-2A through ``stac``).
    """
    if l1c.shape[0] <= SCL_PLANE:
        raise ScorerUnavailable("scorer 'scl' needs the Level-2A scene classification: "
                                "backend stac with backend.stac.s2.level l2a")
    share = np.clip(l1c[SCL_PLANE].astype(np.float32) / np.float32(SCL_POOR_VALUE), 0, 1)
    score = calibrate(share, SCL_POOR_SHARE, params.cloud_thresh, 0.0,
                      params.cloud_score_floor)
    return np.where(valid, score, np.float32(0)).astype(np.float32)


REGISTRY: dict[Scorer, ScorerSpec] = {
    Scorer.PAPER: ScorerSpec(
        Scorer.PAPER, paper_score, includes_shadow=False,
        backends=frozenset({"local", "earthengine", "stac"}),
        summary="the SEN12MS scripts' spectral cloud score (faithful to the paper)"),
    Scorer.S2CLOUDLESS: ScorerSpec(
        Scorer.S2CLOUDLESS, s2cloudless_score, includes_shadow=False,
        backends=frozenset({"local", "stac"}),
        summary="Sentinel Hub's s2cloudless LightGBM classifier (pip extra s2cloudless)"),
    Scorer.CLOUDSCOREPLUS: ScorerSpec(
        Scorer.CLOUDSCOREPLUS, None, includes_shadow=True,
        backends=frozenset({"earthengine"}),
        summary="Google's Cloud Score+ cs_cdf (Earth Engine only: the scores are a "
                "collection there, GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED)"),
    Scorer.SCL: ScorerSpec(
        Scorer.SCL, scl_score, includes_shadow=True, backends=frozenset({"stac"}),
        summary="the Level-2A scene classification: cloud shadow, cloud and cirrus classes "
                "(stac backend, backend.stac.s2.level l2a)"),
}


def get(name: str | Scorer) -> ScorerSpec:
    """The spec of a scorer; ``ValueError`` naming the choices for an unknown name."""
    try:
        return REGISTRY[Scorer(name)]
    except ValueError:
        raise ValueError(f"unknown scorer {name!r}; choose one of "
                         f"{', '.join(s.value for s in Scorer)}") from None


def check_backend(name: str | Scorer, backend: str) -> str | None:
    """``None`` if ``backend`` can run the scorer, else why not (one sentence)."""
    spec = get(name)
    if backend in spec.backends:
        return None
    other = " or ".join(sorted(spec.backends))
    return (f"scorer {spec.name.value!r} runs on the {other} backend only, not on {backend!r} "
            f"({spec.summary}); choose another scorer or backend (docs/clouds.md)")


def local_score(name: str | Scorer, l1c: np.ndarray, valid: np.ndarray,
                params: Any) -> np.ndarray:
    """Run a scorer's numpy implementation (see the module doc for the contract)."""
    spec = get(name)
    if spec.fn is None:
        raise ScorerUnavailable(check_backend(spec.name, "local") or
                                f"scorer {spec.name.value!r} has no local implementation")
    score = spec.fn(l1c, valid, params)
    if score.dtype != np.float32 or score.shape != valid.shape:  # pragma: no cover - contract
        raise AssertionError(f"scorer {spec.name.value} broke its contract")
    return score
