"""The noise annotation of a Sentinel-1 GRD polarisation
(``annotation/calibration/noise-*.xml``): the thermal noise power (in DN**2) of every pixel.

* IPF 2.90 and later (from March 2018): noise = range LUT x azimuth LUT. The range LUT
  (``noiseRangeVectorList``) is interpolated bilinearly over line and pixel; the azimuth LUT
  (``noiseAzimuthVectorList``) comes in blocks, one or more per sub-swath, each valid over
  its lines and samples and interpolated linearly along lines. Pixels no block covers get no
  noise (as ESA's Sentinel-1 toolbox does).
* Before IPF 2.90: one range LUT (``noiseVectorList``/``noiseLut``), no azimuth term.

``xarray-sentinel`` 0.9.6 keeps only the first azimuth block of a GRD (its own comment:
"BROKEN: GRDs have line and noise_azimuth_lut of different size, we take the first one"),
which would leave the other sub-swaths with the first one's azimuth profile; hence this
parser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..raster.io import InputError
from . import xmltext as X
from .calibration import VectorLut, vector_lut


@dataclass(frozen=True)
class AzimuthBlock:
    """One azimuth noise vector: valid over lines ``first_line..last_line`` and samples
    ``first_sample..last_sample`` (inclusive); ``lines`` (int64) and ``values`` (float64)
    give the LUT along lines."""

    swath: str
    first_line: int
    last_line: int
    first_sample: int
    last_sample: int
    lines: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class Noise:
    """A polarisation's thermal noise LUTs (``azimuth`` empty before IPF 2.90)."""

    range: VectorLut
    azimuth: tuple[AzimuthBlock, ...]

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Noise power (DN**2) at every (row, col) of a window.

        Args:
            rows: (R,) int line numbers, increasing; cols: (C,) int pixel numbers, increasing.
        Returns:
            (R, C) float32.
        """
        rows = np.asarray(rows)
        cols = np.asarray(cols)
        power = self.range.at(rows, cols)
        if not self.azimuth:
            return power
        factor = np.zeros(power.shape, np.float32)
        for b in self.azimuth:
            r = np.flatnonzero((rows >= b.first_line) & (rows <= b.last_line))
            c = np.flatnonzero((cols >= b.first_sample) & (cols <= b.last_sample))
            if r.size and c.size:
                prof = np.interp(rows[r], b.lines, b.values).astype(np.float32)
                factor[r[0]:r[-1] + 1, c[0]:c[-1] + 1] = prof[:, None]
        power *= factor
        return power


def parse_noise(xml: bytes, what: str = "noise annotation") -> Noise:
    """Parse a noise annotation (either layout, see the module docstring).

    Raises:
        InputError: not a noise annotation, or a vector is malformed.
    """
    root = X.parse(xml, what)
    rng = root.findall("noiseRangeVectorList/noiseRangeVector")
    if rng:
        blocks = tuple(_azimuth_block(v, what)
                       for v in root.findall("noiseAzimuthVectorList/noiseAzimuthVector"))
        return Noise(vector_lut(rng, "noiseRangeLut", what), blocks)
    old = root.findall("noiseVectorList/noiseVector")
    if root.tag != "noise" or not old:
        raise InputError(f"{what}: <{root.tag}> holds no noise vectors; is this the "
                         "noise-*.xml of a Sentinel-1 product?")
    return Noise(vector_lut(old, "noiseLut", what), ())


def _azimuth_block(v, what) -> AzimuthBlock:
    lines = X.numbers(v, "line", what, np.int64)
    values = X.numbers(v, "noiseAzimuthLut", what)
    if len(lines) != len(values) or len(lines) == 0:
        raise InputError(f"{what}: an azimuth noise vector has {len(lines)} lines and "
                         f"{len(values)} values")
    swath = v.findtext("swath", "").strip()
    return AzimuthBlock(swath, *(int(X.number(v, k, what)) for k in (
        "firstAzimuthLine", "lastAzimuthLine", "firstRangeSample", "lastRangeSample")),
        lines, values)
