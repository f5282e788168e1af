"""The ``stac`` backend: Sentinel-2, Sentinel-1 and MODIS land cover from open archives
behind STAC APIs, read straight onto each scene's UTM grid (docs/stac.md).

Modules, in the order data flows: :mod:`.profiles` (the sources as data, ``profiles.yaml``),
:mod:`.options` (the ``backend.stac`` config section, checked at load), :mod:`.credentials`
(environment / ``.netrc``, redaction), :mod:`.search` (paged, retried ``pystac-client``
search), :mod:`.dedup` (one item per acquisition), :mod:`.harmonize` (Level-2A offsets),
:mod:`.access` (GDAL paths and settings, signing, per-host limits), :mod:`.reader` (assets
onto a grid), :mod:`.sentinel2`, :mod:`.sentinel1`, :mod:`.modis` (the modalities),
:mod:`.plan` (the offline dry run) and :mod:`.backend` (:class:`StacBackend`).
"""

from __future__ import annotations

from .backend import StacBackend
from .options import OptionError, StacOptions, parse

__all__ = ["OptionError", "StacBackend", "StacOptions", "parse"]
