"""Orbit interpolation: cubic Hermite splines through the annotated state vectors
(positions and velocities), with their first and second time derivatives.

Between two state vectors 10 s apart the Hermite interpolant's position error is of the
order of h**4/384 * |x''''| ~ 1e4 / 384 * 1e-5 m < 1 mm for a Sentinel-1 orbit (|x''''| ~
omega**4 r), far below the pixel; it passes exactly through every vector, and its derivative
is the velocity the Doppler equation needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .annotation import OrbitStateVectors


@dataclass(frozen=True)
class Orbit:
    """Position, velocity and acceleration (ECEF, metres, seconds) at any time inside the
    state vectors' span; times beyond it extrapolate the end intervals' cubics."""

    vectors: OrbitStateVectors

    def _basis(self, t: np.ndarray):
        tv = self.vectors.time
        k = np.clip(np.searchsorted(tv, t, "right") - 1, 0, len(tv) - 2)
        h = tv[k + 1] - tv[k]
        s = (t - tv[k]) / h
        return k, h, s

    def state(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position, velocity and acceleration at times ``t``.

        Args:
            t: (N,) float64 seconds since the annotation's epoch.
        Returns:
            Three (N, 3) float64 arrays: m, m/s, m/s**2.
        """
        t = np.asarray(t, np.float64)
        k, h, s = self._basis(t)
        p0, p1 = self.vectors.position[k], self.vectors.position[k + 1]
        v0, v1 = self.vectors.velocity[k] * h[:, None], self.vectors.velocity[k + 1] * h[:, None]
        s1 = s[:, None]
        s2 = s1 * s1
        s3 = s2 * s1
        pos = ((2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s1) * v0
               + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * v1)
        vel = ((6 * s2 - 6 * s1) * p0 + (3 * s2 - 4 * s1 + 1) * v0
               + (-6 * s2 + 6 * s1) * p1 + (3 * s2 - 2 * s1) * v1) / h[:, None]
        acc = ((12 * s1 - 6) * p0 + (6 * s1 - 4) * v0 + (-12 * s1 + 6) * p1
               + (6 * s1 - 2) * v1) / (h * h)[:, None]
        return pos, vel, acc
