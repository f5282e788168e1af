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
            rows: (R,) line numbers, increasing.
            cols: (C,) pixel numbers.
        Returns:
            (R, C) float32; rows and columns beyond the first and last vector or pixel take
            the nearest vector's or pixel's value.
        """
        rows = np.asarray(rows, np.float64)
        cols = np.asarray(cols, np.float64)
        out = np.empty((len(rows), len(cols)), np.float32)
        if len(self.lines) == 1 or len(rows) == 0:
            out[:] = np.interp(cols, self.pixels[0], self.values[0])
            return out
        k = np.clip(np.searchsorted(self.lines, rows, "right") - 1, 0, len(self.lines) - 2)
        w = np.clip((rows - self.lines[k]) / (self.lines[k + 1] - self.lines[k]), 0.0, 1.0)
        cache: dict[int, np.ndarray] = {}

        def vector(i: int) -> np.ndarray:
            if i not in cache:
                cache[i] = np.interp(cols, self.pixels[i], self.values[i]).astype(np.float32)
            return cache[i]

        starts = np.flatnonzero(np.diff(k, prepend=-1))  # runs of rows between two vectors
        for a, b in zip(starts, np.append(starts[1:], len(rows))):
            v0, v1 = vector(int(k[a])), vector(int(k[a]) + 1)
            wk = w[a:b, None].astype(np.float32)
            out[a:b] = v0 + (v1 - v0) * wk
        return out


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
