"""Layover and shadow on a map grid, from each pixel's radar coordinates (:mod:`.terrain`).

Along a range profile (ground points sharing one zero-Doppler time, ordered from near to far
range):

* layover: the slant range must grow with ground distance; a point whose slant range is
  below that of a point nearer the sensor, or above that of a point farther away, shares its
  range cell with another part of the profile (active and passive layover). (Slant range,
  not the GRD pixel: the product's slant-to-ground polynomial steps from one azimuth block to
  the next, which would read as layover where a profile crosses a block boundary.)
* shadow: the look angle must grow with ground distance; a point whose look angle is below
  that of a point nearer the sensor is hidden behind it (active and passive shadow).

Profiles are followed on the map grid itself: the line (azimuth) coordinate is close to an
affine function of the map's row and column, so shearing every column by the rows that keep
the line constant turns profiles into rows of a sheared array, where running maxima and
minima do the work (nearest-neighbour shear: a profile wanders by at most half a row, a few
metres in azimuth, where slant range and look angle barely change). Pure numpy.
"""

from __future__ import annotations

import numpy as np


def _median_step(a: np.ndarray, axis: int) -> float:
    """Median difference between neighbours along ``axis`` (on every 8th row and column)."""
    sub = a[::8, ::8] if min(a.shape) >= 64 else a
    d = np.diff(sub, axis=axis) / (8 if sub is not a else 1)
    d = d[np.isfinite(d)]
    return float(np.median(d)) if d.size else 0.0


def _shear_index(h: int, w: int, slope: float) -> tuple[np.ndarray, int]:
    """Sheared-row index (h, w) of every pixel: rows of one profile share it."""
    offset = np.rint(slope * np.arange(w)).astype(np.int32)
    q = np.arange(h, dtype=np.int32)[:, None] - offset[None, :] + offset.max()
    return q, h + int(offset.max() - offset.min())


def layover_shadow(line: np.ndarray, slant_range: np.ndarray,
                   look_angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Layover and shadow masks of a map grid.

    Args:
        line: (H, W) GRD line of every map pixel (NaN: no height).
        slant_range: (H, W) slant range (metres, any origin).
        look_angle: (H, W) look angle in degrees.
    Returns:
        (layover, shadow): two (H, W) bool arrays.
    """
    h, w = line.shape
    transpose = abs(_median_step(line, 0)) < abs(_median_step(line, 1))
    if transpose:  # azimuth runs along rows: follow profiles down the columns instead
        line, slant_range, look_angle = line.T, slant_range.T, look_angle.T
        h, w = w, h
    d_row, d_col = _median_step(line, 0), _median_step(line, 1)
    slope = -d_col / d_row if d_row else 0.0  # rows per column that keep the line constant
    q, height = _shear_index(h, w, slope)
    # along a profile, does the slant range grow with the column? if not, reverse columns
    flip = _median_step(slant_range, 1) + slope * _median_step(slant_range, 0) < 0
    col = np.arange(w - 1, -1, -1) if flip else np.arange(w)
    flat = (q.astype(np.int64) * w + col[None, :]).ravel()  # sheared position of each pixel
    del q

    def shear(a: np.ndarray) -> np.ndarray:
        out = np.full(height * w, np.nan, np.float32)
        out[flat] = a.ravel()
        return out.reshape(height, w)

    def unshear(mask: np.ndarray) -> np.ndarray:
        return mask.ravel()[flat].reshape(h, w)

    p = shear(slant_range)
    lay = _before_max(p)
    lay |= _after_min(p)
    del p
    shadow = _before_max(shear(look_angle))
    layover, shadow = unshear(lay), unshear(shadow)
    if transpose:
        layover, shadow = layover.T, shadow.T
    return layover, shadow


def _before_max(a: np.ndarray) -> np.ndarray:
    """True where a value is below the maximum of the values before it in its row (NaN:
    no value, never True)."""
    run = np.fmax.accumulate(a, axis=1)
    out = np.zeros(a.shape, bool)
    np.less(a[:, 1:], run[:, :-1], out=out[:, 1:])
    return out


def _after_min(a: np.ndarray) -> np.ndarray:
    """True where a value is above the minimum of the values after it in its row."""
    run = np.fmin.accumulate(a[:, ::-1], axis=1)[:, ::-1]
    out = np.zeros(a.shape, bool)
    np.greater(a[:, :-1], run[:, 1:], out=out[:, :-1])
    return out
