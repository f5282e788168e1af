"""Backends: where the three modalities of a scene come from.

Every backend answers one question through :class:`Backend`: for an ROI and a period, give
the cloud-free Sentinel-2 mosaic, the Sentinel-1 VV/VH image and the 4-band land cover, each
as a GeoTIFF on one grid that the backend declares (:attr:`Backend.export_grid`):

* :attr:`ExportGrid.GEOGRAPHIC` (the paper's path, ``local`` and ``earthengine``): the ROI's
  export grid, EPSG:4326 at 0.0001 degrees (:meth:`ROI.export_grid`), which the pipeline
  then warps to the scene's UTM grid (:mod:`sen12ms_build.raster.warp`);
* :attr:`ExportGrid.SCENE`: the scene's final UTM grid at square pixels
  (:meth:`ROI.scene_grid` at :attr:`SceneRequest.resolution_m`), for a backend that reads
  its sources straight onto it (one resampling); the warp stage then only checks the grid
  and adopts the files, without resampling them again.

* ``local`` (:mod:`.local`) runs the query / score / merge of :mod:`sen12ms_build.mosaic` on
  a local archive of rasters (no network).
* ``earthengine`` (:mod:`.earthengine`) runs the same algorithm on Google Earth Engine and
  downloads the result.
* ``stac`` (:mod:`.stac`) reads open archives behind STAC APIs straight onto the scene grid
  and runs the same engine (docs/stac.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Protocol, Sequence, runtime_checkable

from ..mosaic import MosaicParams
from ..roi import ROI
from ..errors import Sen12msError
from ..geo import Grid

#: File names of an export inside its folder; ``aux`` is optional, and so are the label
#: modalities of a run with ``labels`` (``wc``: ESA WorldCover, ``dw``: Dynamic World) and
#: ``s2_cloudy``, the ``cr`` variant's single cloudy acquisition (:mod:`.cloudy`).
EXPORT_FILES = {"s1": "s1.tif", "s2": "s2.tif", "lc": "lc.tif", "aux": "s2_aux.tif",
                "wc": "wc.tif", "dw": "dw.tif", "s2_cloudy": "s2_cloudy.tif"}
#: The modalities an export may add to the triplet (files above).
EXTRA_EXPORTS = ("wc", "dw")


class ExportGrid(str, Enum):
    """The grid a backend exports on (:attr:`Backend.export_grid`)."""

    #: EPSG:4326 at 0.0001 degrees (:meth:`ROI.export_grid`); the pipeline warps it to UTM.
    GEOGRAPHIC = "geographic"
    #: the scene's final UTM grid at square pixels (:meth:`ROI.scene_grid`); no second warp.
    SCENE = "scene"


@dataclass(frozen=True)
class CloudyOptions:
    """The cloud-removal variants' pick (:mod:`sen12ms_build.mosaic.cloudy_pick`): the
    CLOUDY_PERCENTAGE ``band`` (percent, inclusive) the ``cr`` cloudy acquisition should
    lie in, and the least ROI coverage (percent) of a picked acquisition."""

    band: tuple[float, float] = (10.0, 90.0)
    min_coverage: float = 99.0


@dataclass(frozen=True)
class SceneRequest:
    """What to export: an ROI, a period ``[start, end]`` (inclusive dates), the mosaicking
    constants, the land-cover year and the scene's pixel size (metres, for a backend that
    exports on the scene grid)."""

    roi: ROI
    season: str
    start: dt.date
    end: dt.date
    params: MosaicParams = field(default_factory=MosaicParams)
    landcover_year: int = 2016
    resolution_m: float = 10.0
    labels: str | None = None
    worldcover_version: str = "v100"
    #: ``cr``: also export the scene's cloudy acquisition (``s2_cloudy.tif``, :mod:`.cloudy`)
    variant: str = "sen12ms"
    cloudy: CloudyOptions = field(default_factory=CloudyOptions)

    @property
    def extra(self) -> tuple[str, ...]:
        """Data ids of the modalities added to the triplet (``("wc",)``...)."""
        from ..labels import PRODUCT_IDS

        return (PRODUCT_IDS[self.labels],) if self.labels else ()

    def grid(self, kind: "ExportGrid") -> Grid:
        """The grid a backend of ``kind`` exports this scene on."""
        if ExportGrid(kind) is ExportGrid.SCENE:
            return self.roi.scene_grid(self.resolution_m)
        return self.roi.export_grid()


@dataclass
class SceneExport:
    """A backend's answer: paths of the exported GeoTIFFs (all on the grid the backend
    declares, :attr:`Backend.export_grid`) and metadata (images used, cloudy percentages,
    poor-pixel share ...)."""

    s1: Path
    s2: Path
    lc: Path
    aux: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: the added modalities' files, by data id (``{"wc": .../wc.tif}``)
    extra: dict[str, Path] = field(default_factory=dict)
    s2_cloudy: Path | None = None  # the ``cr`` variant's cloudy acquisition

    @classmethod
    def in_folder(cls, folder: Path, meta: dict[str, Any] | None = None) -> "SceneExport":
        folder = Path(folder)
        aux, cloudy = folder / EXPORT_FILES["aux"], folder / EXPORT_FILES["s2_cloudy"]
        extra = {k: folder / EXPORT_FILES[k] for k in EXTRA_EXPORTS
                 if (folder / EXPORT_FILES[k]).exists()}
        return cls(s1=folder / EXPORT_FILES["s1"], s2=folder / EXPORT_FILES["s2"],
                   lc=folder / EXPORT_FILES["lc"], aux=aux if aux.exists() else None,
                   meta=meta or {}, extra=extra,
                   s2_cloudy=cloudy if cloudy.exists() else None)

    def paths(self) -> dict[str, Path]:
        return {"s1": self.s1, "s2": self.s2, "lc": self.lc, **self.extra}


@dataclass(frozen=True)
class TimeSeriesRequest:
    """What the ``cr-ts`` variant asks of a backend for one ROI: ``time_points`` single
    Sentinel-2 acquisitions spread over ``[start, end]`` and the Sentinel-1 acquisition
    nearest each (:func:`sen12ms_build.mosaic.cloudy_pick.time_series`), unmosaicked."""

    roi: ROI
    start: dt.date
    end: dt.date
    time_points: int = 30
    min_coverage: float = 99.0
    resolution_m: float = 10.0

    def grid(self, kind: "ExportGrid") -> Grid:
        """The grid a backend of ``kind`` exports this ROI on."""
        if ExportGrid(kind) is ExportGrid.SCENE:
            return self.roi.scene_grid(self.resolution_m)
        return self.roi.export_grid()


@dataclass
class TimeSeriesExport:
    """A backend's ``cr-ts`` answer: ``points[t]`` for each time point ``t``, a dict with
    ``s2_file`` and ``s1_file`` (file names in ``folder``: slots that share an acquisition
    share its file), ``s2`` (``id``, ``time``, ``solar_azimuth``, ``solar_zenith``,
    ``roi_coverage_percent``) and ``s1`` (``id``, ``time``, ``orbit_pass``); every file on
    the grid the backend declares."""

    folder: Path
    points: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


class NoDataError(Sen12msError, RuntimeError):
    """The backend found no acquisition of a modality for the ROI and period."""


#: Optional abilities a backend may declare through :meth:`Backend.supports`.
ABILITIES = ("prepare", "dry_run", "problems", "time_series")


@runtime_checkable
class Backend(Protocol):
    """The one interface the pipeline talks to.

    ``export_scene`` is required. The optional abilities are declared here with default
    behaviour, so a backend that subclasses :class:`Backend` explicitly inherits them and
    callers never probe with ``getattr``: :meth:`prepare` (a no-op), :attr:`problems` (none),
    :meth:`dry_run` (raises ``NotImplementedError``), and :meth:`supports` saying which
    of :data:`ABILITIES` a backend really implements.
    """

    name: str
    #: the grid every export of this backend is on (:class:`ExportGrid`)
    export_grid: ClassVar[ExportGrid] = ExportGrid.GEOGRAPHIC

    def export_scene(self, request: SceneRequest, out_dir: Path) -> SceneExport:
        """Write ``s1.tif``, ``s2.tif``, ``lc.tif`` (and optionally ``s2_aux.tif``; and
        the file of each of ``request.extra``, e.g. ``wc.tif``) for the request into
        ``out_dir`` atomically, on ``request.grid(self.export_grid)``, and return their
        paths and metadata.

        Raises:
            NoDataError: a modality has no acquisition for the ROI and period.
        """
        ...

    def prepare(self, requests: Sequence[SceneRequest]) -> None:
        """Called once with every scene of a run before the first :meth:`export_scene`
        (Earth Engine batch mode submits all export tasks here). Default: nothing."""
        return None

    @property
    def problems(self) -> list[str]:
        """Inputs skipped so far, one line each (e.g. unreadable archive files)."""
        return []

    def dry_run(self, requests: Sequence[SceneRequest]) -> Any:
        """What a run of ``requests`` would request, without exporting pixels; the
        result has a ``format()`` method giving the text table."""
        raise NotImplementedError(f"the {self.name} backend has no dry run of its own")

    def export_time_series(self, request: TimeSeriesRequest,
                           out_dir: Path) -> TimeSeriesExport:
        """The ``cr-ts`` variant's single acquisitions of one ROI (:class:`TimeSeriesExport`),
        written into ``out_dir`` atomically; ability ``time_series``.

        Raises:
            NoDataError: no Sentinel-2 acquisition covers the ROI, or no Sentinel-1.
        """
        raise NotImplementedError(f"the {self.name} backend cannot export time series")

    def supports(self, ability: str) -> bool:
        """Whether this backend implements the optional ``ability`` (one of
        :data:`ABILITIES`) beyond the default."""
        return False


def get_backend(name: str, **options: Any) -> Backend:
    """Instantiate a backend by name (``local``, ``earthengine`` or ``stac``)."""
    if name == "local":
        from .local import LocalBackend

        return LocalBackend(**options)
    if name == "earthengine":
        from .earthengine import EarthEngineBackend

        return EarthEngineBackend(**options)
    if name == "stac":
        from .stac import StacBackend

        return StacBackend(**options)
    raise ValueError(f"unknown backend {name!r} (choose 'local', 'earthengine' or 'stac')")
