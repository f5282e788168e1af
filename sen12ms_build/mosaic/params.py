"""The mosaicking algorithm's constants (SEN12MS section 3.1): :class:`MosaicParams`, the one
home of every constant, shared by the numpy path (:mod:`sen12ms_build.mosaic`) and the Earth
Engine graphs (:mod:`sen12ms_build.backends.earthengine.graphs`). The reference is
``shared/spec/mosaicking.md``."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

import numpy as np


#: Scorers whose own constants are named ``<scorer>_*``
#: (:meth:`MosaicParams.fingerprint_dict`).
SCORER_CONSTANT_PREFIXES = ("s2cloudless", "cloudscoreplus")


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
    # the model classifies block means at this scale, a multiple of score_scale_m, and its
    # probability is upsampled to score_scale_m: 60 m is the scale of three of its ten
    # bands (B1, B9, B10); Sentinel Hub runs it at 160 m; 20 = every score-scale pixel,
    # 9x the trees' cost (docs/clouds.md)
    s2cloudless_scale_m: float = 60.0
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

    def fingerprint_dict(self) -> dict[str, Any]:
        """:meth:`as_dict` without the constants of the scorers not chosen (``s2cloudless_*``
        unless ``scorer`` is s2cloudless, ``cloudscoreplus_*`` unless it is cloudscoreplus):
        what a stage's fingerprint holds, so changing a scorer's constant redoes only the
        runs that use that scorer."""
        return {k: v for k, v in self.as_dict().items()
                if not any(k.startswith(f"{name}_") and self.scorer != name
                           for name in SCORER_CONSTANT_PREFIXES)}

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view (tuples as lists), for manifests and request graphs."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}


DEFAULT_PARAMS = MosaicParams()
