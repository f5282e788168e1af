"""The calibration annotation of a Sentinel-1 GRD polarisation
(``annotation/calibration/calibration-*.xml``): the sigmaNought look-up table and its
bilinear interpolation over line and pixel.

ESA's definition (Sentinel-1 Product Specification; "Radiometric Calibration of S-1 Level-1
Products"): sigma0 = (DN**2 - noise) / A**2, where A is the sigmaNought LUT interpolated
bilinearly at the pixel (linear along the pixel list of the two calibration vectors whose
lines bracket the pixel's line, then linear along lines). The vectors need not share a pixel
list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..raster.io import InputError
from . import xmltext as X

#: The calibration LUT the chain uses: sigma nought, as Earth Engine's COPERNICUS/S1_GRD.
SIGMA_LUT = "sigmaNought"
LUTS = ("sigmaNought", "betaNought", "gamma", "dn")


@dataclass(frozen=True)
class VectorLut:
    """A LUT given as vectors along range at some lines (calibration or noise range).

    Attributes:
        lines: (V,) int64 lines of the vectors, increasing.
        pixels: V arrays (int64, increasing) of the pixels of each vector.
        values: V arrays (float64) of the LUT at those pixels.
    """

    lines: np.ndarray
    pixels: tuple[np.ndarray, ...]
    values: tuple[np.ndarray, ...]

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The LUT interpolated bilinearly at every (row, col) of a window.

        Args:
            rows: (R,) line numbers (int or float).
            cols: (C,) pixel numbers.
        Returns:
            (R, C) float64; rows and columns beyond the first and last vector or pixel take
            the nearest vector's or pixel's value.
        """
        rows = np.asarray(rows, np.float64)
        cols = np.asarray(cols, np.float64)
        lo = int(np.clip(np.searchsorted(self.lines, rows.min(), "right") - 1, 0,
                         len(self.lines) - 1))
        hi = int(np.clip(np.searchsorted(self.lines, rows.max(), "left"), 0,
                         len(self.lines) - 1))
        idx = np.arange(lo, hi + 1)
        along = np.stack([np.interp(cols, self.pixels[i], self.values[i]) for i in idx])
        if len(idx) == 1:
            return np.broadcast_to(along[0], (len(rows), len(cols))).copy()
        k = np.clip(np.searchsorted(self.lines[idx], rows, "right") - 1, 0, len(idx) - 2)
        l0 = self.lines[idx][k].astype(np.float64)
        l1 = self.lines[idx][k + 1].astype(np.float64)
        w = np.clip((rows - l0) / (l1 - l0), 0.0, 1.0)[:, None]
        return along[k] * (1.0 - w) + along[k + 1] * w


@dataclass(frozen=True)
class Calibration:
    """A polarisation's calibration LUT (one of :data:`LUTS`) and the absolute calibration
    constant (informative: the LUT already holds it)."""

    lut: VectorLut
    name: str
    absolute_calibration_constant: float


def parse_calibration(xml: bytes, lut: str = SIGMA_LUT,
                      what: str = "calibration annotation") -> Calibration:
    """Parse a calibration annotation's ``lut`` (default sigmaNought).

    Raises:
        InputError: not a calibration annotation, or a vector is malformed.
    """
    if lut not in LUTS:
        raise ValueError(f"lut must be one of {', '.join(LUTS)}, got {lut!r}")
    root = X.parse(xml, what)
    vectors = root.findall("calibrationVectorList/calibrationVector")
    if root.tag != "calibration" or not vectors:
        raise InputError(f"{what}: <{root.tag}> holds no calibration vectors; is this the "
                         "calibration-*.xml of a Sentinel-1 product?")
    constant = X.number(root, "calibrationInformation/absoluteCalibrationConstant", what)
    return Calibration(vector_lut(vectors, lut, what), lut, constant)


def vector_lut(vectors, tag: str, what: str) -> VectorLut:
    """A :class:`VectorLut` from XML vectors holding ``line``, ``pixel`` and ``tag``."""
    lines, pixels, values = [], [], []
    for v in vectors:
        px = X.numbers(v, "pixel", what, np.int64)
        val = X.numbers(v, tag, what)
        if len(px) != len(val) or len(px) < 2 or np.any(np.diff(px) <= 0):
            raise InputError(f"{what}: a {tag} vector at line {X.text(v, 'line', what)} has "
                             f"{len(px)} pixels and {len(val)} values")
        lines.append(int(X.number(v, "line", what)))
        pixels.append(px)
        values.append(val)
    line_arr = np.asarray(lines, np.int64)
    order = np.argsort(line_arr, kind="stable")
    line_arr = line_arr[order]
    if np.any(np.diff(line_arr) <= 0):
        raise InputError(f"{what}: two {tag} vectors share a line")
    return VectorLut(line_arr, tuple(pixels[i] for i in order),
                     tuple(values[i] for i in order))
