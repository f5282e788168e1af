"""The pluggable choices of the mosaicking, as string enums shared by the config loader and
the command line (geedim's ``CloudMaskMethod`` style).

No imports from the package: anything may import these. ``Scorer("paper")`` and
``Scorer.PAPER == "paper"`` both hold, so the values travel as plain strings in
:class:`sen12ms_build.mosaic.MosaicParams`, YAML and fingerprints.
"""

from __future__ import annotations

from enum import Enum


class Scorer(str, Enum):
    """Per-pixel cloud score of the quality score module (``mosaic.scorer``, ``--scorer``).

    * ``paper``: the SEN12MS scripts' spectral tests (default; both backends).
    * ``s2cloudless``: Sentinel Hub's LightGBM pixel classifier (the ``s2cloudless``
      package; local backend).
    * ``cloudscoreplus``: Google's Cloud Score+ ``cs_cdf`` (Earth Engine backend).
    * ``scl``: the Level-2A scene classification (cloud shadow, cloud, cirrus classes are
      poor; ``stac`` backend with ``level: l2a``).

    See ``docs/clouds.md`` and :mod:`sen12ms_build.mosaic.scorers`.
    """

    PAPER = "paper"
    S2CLOUDLESS = "s2cloudless"
    CLOUDSCOREPLUS = "cloudscoreplus"
    SCL = "scl"

    def __str__(self) -> str:
        return self.value


class MergeMethod(str, Enum):
    """How the "best" images go on top of the quality mosaic (``mosaic.merge``,
    ``--merge``).

    * ``paper``: whole footprints on top, unmasked (default; the published scripts).
    * ``masked``: the best images' poor (cloud or shadow) pixels are masked first, so the
      quality mosaic fills them.
    """

    PAPER = "paper"
    MASKED = "masked"

    def __str__(self) -> str:
        return self.value


class Variant(str, Enum):
    """Which dataset a run builds (``variant``, ``--variant``; docs/variants.md).

    * ``sen12ms``: the paper's triplets (default).
    * ``cr``: SEN12MS-CR, the cloud-removal pairs: per scene, besides the cloud-free mosaic,
      one real cloudy Sentinel-2 acquisition of the same season, with its cloud and shadow
      masks, in the released ``ROIs<seed>_<season>_{s1|s2|s2_cloudy}`` layout.
    * ``cr-ts``: SEN12MS-CR-TS, the time series: per ROI, ``cloud_removal.time_points``
      single Sentinel-2 and Sentinel-1 acquisitions spread over the year, in the released
      ``ROIs<seed>/<roi>/{S1,S2}/<t>`` layout.
    """

    SEN12MS = "sen12ms"
    CR = "cr"
    CR_TS = "cr-ts"

    def __str__(self) -> str:
        return self.value


def choices(enum: type[Enum]) -> list[str]:
    """The values of a method enum, in declaration order (for click and error messages)."""
    return [m.value for m in enum]


class Labels(str, Enum):
    """10 m land-cover labels added as a fourth modality (``labels``, ``--labels``).

    * ``none``: the paper's triplet only (default).
    * ``worldcover``: ESA WorldCover (every backend; ``worldcover_version`` v100 / v200).
    * ``dynamicworld``: Dynamic World over the season's images (Earth Engine only).

    Class tables: :mod:`sen12ms_build.labels`.
    """

    NONE = "none"
    WORLDCOVER = "worldcover"
    DYNAMICWORLD = "dynamicworld"

    def __str__(self) -> str:
        return self.value
