"""Google Earth Engine backend: the paper's GEE workflow as production code.

Public API:

* :class:`EarthEngineBackend`, :class:`EarthEngineOptions` (``get_backend("earthengine",
  **options)``), :func:`plan_requests` (pure request plan);
* graph builders that never execute: :func:`s2_mosaic`, :func:`s1_image`,
  :func:`landcover_image` (``region`` an ``ee.Geometry``, dates ISO strings, inclusive);
* :func:`plan` / :func:`plan_chunks` (computePixels request planning);
* errors: :class:`EarthEngineError`, :class:`EarthEngineAuthError`,
  :class:`EarthEngineRequestError`, :class:`DownloadError`, :class:`BatchTaskError`.

See ``docs/earthengine.md``.
"""

from .backend import EarthEngineBackend, EarthEngineOptions, plan_requests
from .chunks import Plan, plan, plan_chunks
from .errors import (BatchTaskError, DownloadError, EarthEngineAuthError, EarthEngineError,
                     EarthEngineRequestError)
from .graphs import landcover_image, s1_image, s2_mosaic

__all__ = [
    "BatchTaskError", "DownloadError", "EarthEngineAuthError", "EarthEngineBackend",
    "EarthEngineError", "EarthEngineOptions", "EarthEngineRequestError", "Plan",
    "landcover_image", "plan", "plan_chunks", "plan_requests", "s1_image", "s2_mosaic",
]
