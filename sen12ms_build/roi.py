"""Regions of interest: the square scenes a dataset is cut from, and their GeoJSON form."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from .geo import Grid, export_grid, geographic_ring, square_utm_bounds, utm_epsg, utm_grid


@dataclass(frozen=True)
class ROI:
    """A square scene of ``size_m`` metres centred on (lon, lat), in its local UTM zone.

    Attributes:
        scene: the scene number used in folder and file names (``s2_<scene>``), unique
            within a season's ROI set.
        id: stable identifier, ``<seed>_<kind>_<n>``.
        seed: the sampling seed (the season's seed in the paper's design).
        kind: ``land``, ``urban`` or ``listed`` (read from a file).
        lon, lat: centre in degrees (EPSG:4326).
        size_m: side of the square in metres.
        epsg: EPSG code of the local WGS 84 UTM zone.
        land_share: share of the square on land (0..1) when it was sampled.
        place: nearest named place for urban ROIs, else "".
    """

    scene: int
    id: str
    seed: int
    kind: str
    lon: float
    lat: float
    size_m: float
    epsg: int
    land_share: float = 1.0
    place: str = ""

    @classmethod
    def at(cls, scene: int, seed: int, kind: str, lon: float, lat: float, size_m: float,
           **extra: Any) -> "ROI":
        """An ROI in the UTM zone of its centre, with the id ``<seed>_<kind>_<scene>``."""
        return cls(scene=scene, id=f"{seed}_{kind}_{scene}", seed=seed, kind=kind,
                   lon=float(lon), lat=float(lat), size_m=float(size_m),
                   epsg=utm_epsg(lon, lat), **extra)

    @property
    def utm_zone(self) -> str:
        """e.g. ``18N`` or ``33S``."""
        return f"{self.epsg % 100}{'N' if self.epsg < 32700 else 'S'}"

    def utm_bounds(self, res_m: float = 10.0) -> tuple[float, float, float, float]:
        return square_utm_bounds(self.lon, self.lat, self.size_m, self.epsg, res_m)

    def scene_grid(self, res_m: float = 10.0) -> Grid:
        """The UTM grid of the final scene (square ``res_m`` pixels)."""
        return utm_grid(self.utm_bounds(res_m), self.epsg, res_m)

    def ring(self) -> list[tuple[float, float]]:
        """The square as a closed, densified lon/lat ring."""
        return geographic_ring(self.utm_bounds(), self.epsg)

    def export_grid(self) -> Grid:
        """The EPSG:4326 0.0001 degree grid the backends export on."""
        return export_grid(self.ring())

    def to_feature(self) -> dict[str, Any]:
        props = asdict(self)
        props["utm_zone"] = self.utm_zone
        return {
            "type": "Feature",
            "id": self.id,
            "properties": props,
            "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in self.ring()]]},
        }


def write_geojson(rois: Iterable[ROI], path: Path, **collection_props: Any) -> None:
    """Write ROIs as a GeoJSON FeatureCollection (EPSG:4326) atomically."""
    from .raster.io import atomic_write_text

    fc = {"type": "FeatureCollection", **collection_props,
          "features": [r.to_feature() for r in rois]}
    atomic_write_text(path, json.dumps(fc, indent=1))


def read_geojson(path: Path) -> list[ROI]:
    """Read ROIs written by :func:`write_geojson`."""
    data = json.loads(Path(path).read_text())
    names = set(ROI.__dataclass_fields__)
    return [ROI(**{k: v for k, v in f["properties"].items() if k in names})
            for f in data["features"]]
