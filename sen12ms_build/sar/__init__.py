"""Sentinel-1 IW GRD to terrain-corrected sigma0 in dB on a scene's UTM grid: the open-data
counterpart of Earth Engine's ``COPERNICUS/S1_GRD`` (docs/sentinel1.md has the step-by-step
parity table).

Modules, in the order data flows through them:

* XML at the edges: :mod:`.xmltext` (helpers), :mod:`.manifest` (``manifest.safe``: product
  facts and where each polarisation's files are), :mod:`.annotation` (orbit, timing,
  geolocation grid, slant-to-ground-range polynomials), :mod:`.calibration` (the sigmaNought
  LUT), :mod:`.noise` (thermal noise LUTs);
* :mod:`.product`: :class:`~.product.GrdProduct`, one product's XML and DN window readers;
* pure numpy: :mod:`.orbit` (state-vector interpolation), :mod:`.geometry` (ellipsoid and
  range-Doppler equations), :mod:`.geoid` (EGM96 heights to ellipsoid heights),
  :mod:`.terrain` (map grid to radar coordinates), :mod:`.radiometry` (border noise, thermal
  noise, calibration), :mod:`.layover` (layover and shadow);
* :mod:`.chain`: :func:`~.chain.sigma0_db_on_grid`, the chain;
* :mod:`.selection`: which GRD products a period uses, in which order (both backends agree).

This module holds the chain's name and version, recorded in S1 patch tags and STAC items.
"""

from __future__ import annotations

#: Name of the processing chain (the ``PROCESSING`` tag of S1 rasters built from GRD).
S1_PROCESSING_NAME = "sen12ms-build sar"
#: Version of the chain; bump it whenever an output value can change.
S1_PROCESSING_VERSION = "1"
#: One line that identifies the chain in tags and STAC items, so that a dataset built from
#: open GRD products can be told from one exported by Earth Engine (``COPERNICUS/S1_GRD``).
S1_PROCESSING = (
    f"{S1_PROCESSING_NAME} {S1_PROCESSING_VERSION} (GRD DN; border noise; thermal noise "
    "range x azimuth LUT; sigmaNought LUT; range-Doppler terrain correction, annotated "
    "orbit, DEM + EGM96; bilinear; layover/shadow NaN; 10*log10)"
)
