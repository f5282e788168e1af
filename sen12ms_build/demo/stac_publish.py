"""Publish the demo archive in the real sources' layouts on loopback services, for
``sen12ms-build demo --backend stac`` and the stac backend's tests.

:func:`publish` turns a demo archive (:mod:`.archive`) into what the open archives hold:

* Sentinel-2 Level-1C as JPEG 2000 per band at the band's native resolution (10/20/60 m,
  lossless), under SAFE-shaped keys on S3 (``Sentinel-2/MSI/L1C/<y>/<m>/<d>/<product>.SAFE/
  GRANULE/L1C_<tile>_A<orbit>_<time>/IMG_DATA/<tile>_<time>_B01.jp2``, CDSE's ``eodata``
  layout), with CDSE-shaped items;
* Sentinel-2 Level-2A as COGs in Planetary Computer's blob layout, SAS-protected, with
  PC-shaped items (``s2:processing_baseline``: the demo marks the second of every three
  acquisitions reprocessed at baseline 05.00, so its COGs carry the +1000 DN offset the
  backend must remove) and an SCL band made from the archive's cloud and shadow truth
  (demo only: the archive holds L1C ground, so this "L2A" is that ground in L2A's layout);
* Sentinel-1 as raw GRD products (:mod:`.grd`: the archive's simulated sigma0 in radar
  geometry, DN through the real calibration and noise LUTs, GCPs, the SAFE's XML) in
  Planetary Computer's blob layout and renamed files (``GRD/<y>/<m>/<d>/IW/DV/<product>/
  manifest.safe``, ``measurement/iw-vv.tiff``, ``annotation/iw-vv.xml`` ...), SAS-protected,
  with PC-shaped ``sentinel-1-grd`` items (``schema-product-{pol}`` points at the RFI
  annotation, as in the recorded item): the backend runs the whole GRD chain on them;
* the Copernicus DEM as ``cop-dem-glo-30``-shaped items and 1 x 1 degree COG tiles in
  EPSG:4326 at 1 arc-second (the demo ground is 0 m above the geoid:
  :data:`.grd.DEM_HEIGHT_M`), SAS-protected;
* MODIS MCD12Q1 as one HDF4 granule of the whole sinusoidal tile (2400 x 2400, the four
  layers, HDF-EOS2 ``StructMetadata.0``) behind an Earthdata-like bearer token, with a
  CMR-STAC-shaped item;
* ESA WorldCover (the archive's ``worldcover/`` tile) as a COG in Planetary Computer's
  ``esa-worldcover`` blob layout, SAS-protected, with an item shaped like PC's (asset
  ``map``, ``esa_worldcover:product_version``, ``classification:classes``; the recorded
  item in ``tests/fixtures/stac/``).

:func:`serve` starts the services on 127.0.0.1 (:mod:`.servers`) and gives the
``backend.stac`` section and the (fake, loopback-only) credentials that read them. Item
shapes follow recorded items (``tests/fixtures/stac/README.md``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer

from ..products import LC_MODIS_BANDS, S2_BANDS, S2_NATIVE_RES_M
from ..raster.io import atomic_path, atomic_write_text
from .landcover import MODIS_ORIGIN, MODIS_PIXEL_M, MODIS_SINUSOIDAL
from .servers import FileServer, S3Server, StacApiServer

TILE = "18SVG"
MODIS_TILE_PX = 2400
#: The demo's fake credentials: they open the loopback services and nothing else.
DEMO_ENV = {"CDSE_S3_ACCESS_KEY": "demo-cdse-access-key-0000",
            "CDSE_S3_SECRET_KEY": "demo-cdse-secret-key-0000",
            "EARTHDATA_TOKEN": "demo-earthdata-token-0000"}
L1C_COLLECTION = "sentinel-2-l1c"
L2A_COLLECTION = "sentinel-2-l2a"
S1_COLLECTION = "sentinel-1-grd"
DEM_COLLECTION = "cop-dem-glo-30"
#: Planetary Computer's storage of the GRD products and DEM tiles (account, container).
PC_S1 = ("sentinel1euwest", "s1-grd")
PC_DEM = ("elevationeuwest", "copernicus-dem")
#: Copernicus DEM GLO-30 tiles: 1 x 1 degree, 1 arc-second pixels (3600 x 3600 below 50
#: degrees of latitude), pixel centres on whole arc-seconds (the recorded item's
#: ``proj:transform`` starts half a pixel west and north of the degree).
DEM_TILE_PX = 3600
LC_COLLECTION = "MCD12Q1_061"
WC_COLLECTION, WC_ACCOUNT = "esa-worldcover", "ai4edataeuwest"
PC_ACCOUNT, PC_CONTAINER = "sentinel2l2a01", "sentinel2-l2"
#: PC asset keys of the bands (the recorded item's), and CDSE's for L1C.
PC_ASSETS = {b: ("B" + b[1:].zfill(2) if b != "B8A" else "B8A") for b in S2_BANDS}
JP2_BLOCK = 256


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _native(band: np.ndarray, factor: int) -> np.ndarray:
    """A 10 m band at ``factor`` x 10 m: the mean of each block's valid (nonzero) pixels."""
    if factor == 1:
        return band
    h, w = band.shape
    H, W = math.ceil(h / factor), math.ceil(w / factor)
    pad = np.zeros((H * factor, W * factor), np.float64)
    pad[:h, :w] = band
    blocks = pad.reshape(H, factor, W, factor)
    n = (blocks > 0).sum(axis=(1, 3))
    mean = np.where(n > 0, blocks.sum(axis=(1, 3)) / np.maximum(n, 1), 0)
    return np.rint(mean).astype(np.uint16)


def _write(path: Path, data: np.ndarray, crs: Any, transform: Affine, driver: str,
           nodata: float | None = None, **opts: Any) -> None:
    """One raster file, atomically (JP2 and COG are written through a MEM copy)."""
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = data if data.ndim == 3 else data[None]
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=arr.shape[2], height=arr.shape[1],
                      count=arr.shape[0], dtype=arr.dtype, crs=crs, transform=transform,
                      nodata=nodata) as ds:
            ds.write(arr)
        with mem.open() as src, atomic_path(path) as tmp:
            tmp.unlink(missing_ok=True)
            rio_copy(src, str(tmp), driver=driver, **opts)


def _lonlat_bbox(crs: Any, bounds: tuple[float, float, float, float]) -> list[float]:
    from rasterio.warp import transform_bounds

    return [round(v, 6) for v in transform_bounds(crs, "EPSG:4326", *bounds,
                                                  densify_pts=21)]


def _polygon(b: list[float]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[b[0], b[1]], [b[2], b[1]], [b[2], b[3]],
                                                [b[0], b[3]], [b[0], b[1]]]]}


@dataclass
class Published:
    """What :func:`publish` wrote: folders to serve, S3 objects, items per collection."""

    root: Path
    s3_objects: dict[str, Path] = field(default_factory=dict)  # key -> file (bucket eodata)
    items: list[dict[str, Any]] = field(default_factory=list)  # hrefs with {S3}, {PC} ...


def _l1c(entry: dict[str, Any], l1c: np.ndarray, grid: tuple[Any, Affine], pub: Published,
         bbox: list[float], index: int) -> None:
    t = dt.datetime.fromisoformat(entry["sensing_time"].replace("Z", "+00:00"))
    pid = entry["product_id"]
    stamp = f"{t:%Y%m%dT%H%M%S}"
    orbit = f"A{5000 + 100 * index:06d}"
    prefix = (f"Sentinel-2/MSI/L1C/{t:%Y/%m/%d}/{pid}.SAFE/GRANULE/L1C_T{TILE}_{orbit}_"
              f"{stamp}/IMG_DATA")
    assets = {}
    crs, transform = grid
    for b, band in zip(S2_BANDS, l1c):
        res = S2_NATIVE_RES_M[b]
        name = "B" + b[1:].zfill(2) if b != "B8A" else "B8A"
        rel = f"{prefix}/T{TILE}_{stamp}_{name}.jp2"
        path = pub.root / "s3" / rel
        if not path.exists():
            _write(path, _native(band, res // 10), crs, transform @ Affine.scale(res // 10),
                   "JP2OpenJPEG", CODEC="JP2", QUALITY="100", REVERSIBLE="YES",
                   BLOCKXSIZE=str(JP2_BLOCK), BLOCKYSIZE=str(JP2_BLOCK))
        pub.s3_objects[rel] = path
        assets[name] = {"href": f"s3://eodata/{rel}", "type": "image/jp2",
                        "title": f"{name} - {res}m", "roles": ["data", "reflectance"],
                        "gsd": res, "nodata": 0, "data_type": "uint16",
                        "raster:scale": 0.0001, "auth:refs": ["s3"]}
    el = 90.0 - float(entry["solar_zenith_deg"])
    pub.items.append({
        "type": "Feature", "stac_version": "1.1.0", "id": pid, "collection": L1C_COLLECTION,
        "bbox": bbox, "geometry": _polygon(bbox), "links": [], "assets": assets,
        "properties": {"datetime": _iso(t), "start_datetime": _iso(t), "end_datetime": _iso(t),
                       "platform": entry["spacecraft"].lower(), "constellation": "sentinel-2",
                       "instruments": ["msi"], "grid:code": f"MGRS-{TILE}",
                       "product:type": "S2MSI1C", "processing:level": "L1",
                       "processing:version": "02.05",
                       "processing:datetime": _iso(t + dt.timedelta(hours=2)),
                       "eopf:datatake_id": f"G{pid[:3]}_{stamp}_{orbit[1:]}_N02.05",
                       "view:sun_azimuth": float(entry["solar_azimuth_deg"]),
                       "view:sun_elevation": el,
                       "eo:cloud_cover": float(entry["cloud_percent"])}})


def _scl(root: Path, entry: dict[str, Any], shape: tuple[int, int]) -> np.ndarray:
    """A 10 m scene classification from the archive's truth: 9 cloud, 3 shadow, 4 elsewhere
    (demo only; the real SCL is ESA's classifier's)."""
    scl = np.full(shape, 4, np.uint8)
    for key, cls in (("shadow", 3), ("cloud", 9)):
        with rasterio.open(root / entry["truth"][key]) as f:
            scl[f.read(1) > 0] = cls
    return scl


def _l2a(archive: Path, entry: dict[str, Any], l1c: np.ndarray, grid: tuple[Any, Affine],
         pub: Published, bbox: list[float], index: int) -> None:
    t = dt.datetime.fromisoformat(entry["sensing_time"].replace("Z", "+00:00"))
    stamp = f"{t:%Y%m%dT%H%M%S}"
    reprocessed = index % 3 == 1  # Collection-1 style: baseline 05.00, +1000 DN in the files
    base = "05.00" if reprocessed else "02.05"
    pid = entry["product_id"].replace("MSIL1C", "MSIL2A").replace("_N0205_",
                                                                  f"_N{base.replace('.', '')}_")
    item_id = pid[:26] + pid[32:]  # PC ids leave the baseline out
    gran = f"L2A_T{TILE}_A{5000 + 100 * index:06d}_{stamp}"
    prefix = (f"{PC_ACCOUNT}/{PC_CONTAINER}/{TILE[:2]}/{TILE[2]}/{TILE[3:]}/{t:%Y/%m/%d}/"
              f"{pid}.SAFE/GRANULE/{gran}/IMG_DATA")
    crs, transform = grid
    valid = np.bitwise_or.reduce(l1c, axis=0) != 0
    assets = {}
    for b, band in zip(S2_BANDS, l1c):
        if b == "B10":
            continue
        res = S2_NATIVE_RES_M[b]
        key = PC_ASSETS[b]
        data = _native(band, res // 10)
        if reprocessed:
            data = np.where(data > 0, np.minimum(data.astype(np.int32) + 1000, 65535),
                            0).astype(np.uint16)
        rel = f"{prefix}/R{res}m/T{TILE}_{stamp}_{key}_{res}m.tif"
        path = pub.root / "blob" / rel
        if not path.exists():
            _write(path, data, crs, transform @ Affine.scale(res // 10), "COG", nodata=0,
                   COMPRESS="DEFLATE", BLOCKSIZE="256", OVERVIEWS="NONE")
        assets[key] = {"href": f"{{PC}}/{rel}", "type": "image/tiff; application=geotiff; "
                       "profile=cloud-optimized", "title": f"Band {b[1:]} - {res}m",
                       "gsd": res, "roles": ["data"],
                       "eo:bands": [{"name": key}]}
    scl = _scl(archive, entry, valid.shape)
    scl[~valid] = 0
    rel = f"{prefix}/R20m/T{TILE}_{stamp}_SCL_20m.tif"
    path = pub.root / "blob" / rel
    if not path.exists():
        _write(path, scl[::2, ::2], crs, transform @ Affine.scale(2), "COG", nodata=0,
               COMPRESS="DEFLATE", BLOCKSIZE="256", OVERVIEWS="NONE")
    assets["SCL"] = {"href": f"{{PC}}/{rel}", "type": "image/tiff; application=geotiff; "
                     "profile=cloud-optimized", "title": "Scene classfication map (SCL)",
                     "gsd": 20.0, "roles": ["data"]}
    pub.items.append({
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": L2A_COLLECTION,
        "bbox": bbox, "geometry": _polygon(bbox), "links": [], "assets": assets,
        "properties": {"datetime": _iso(t), "platform": entry["spacecraft"],
                       "constellation": "Sentinel 2", "instruments": ["msi"],
                       "s2:mgrs_tile": TILE, "s2:product_type": "S2MSI2A",
                       "s2:processing_baseline": base, "s2:product_uri": f"{pid}.SAFE",
                       "s2:datatake_id": f"G{pid[:3]}_{stamp}_{5000 + 100 * index:06d}_N{base}",
                       "s2:generation_time": _iso(t + dt.timedelta(days=1000 if reprocessed
                                                                   else 0, hours=2)),
                       "s2:mean_solar_azimuth": float(entry["solar_azimuth_deg"]),
                       "s2:mean_solar_zenith": float(entry["solar_zenith_deg"]),
                       "eo:cloud_cover": float(entry["cloud_percent"]),
                       "proj:epsg": int(str(crs).split(":")[-1]) if ":" in str(crs)
                       else None}})


def _link(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (a copy across file systems); kept if it exists."""
    import os
    import shutil

    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def _cog_copy(src: Path, dst: Path) -> None:
    """A GRD measurement TIFF as a Cloud-Optimized GeoTIFF (its GCPs kept, empty tiles left
    out); kept if it exists."""
    import warnings

    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.shutil import copy as rio_copy

    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        tmp.unlink(missing_ok=True)
        rio_copy(str(src), str(tmp), driver="COG", COMPRESS="DEFLATE", PREDICTOR="2",
                 BLOCKSIZE="512", SPARSE_OK="TRUE", OVERVIEWS="NONE")


def _pc_time(t: dt.datetime) -> str:
    """Planetary Computer's ``start_datetime`` / ``end_datetime`` spelling of S1 items
    (``2023-06-28 21:07:05.989235+00:00``, recorded item)."""
    return t.astimezone(dt.UTC).isoformat(sep=" ")


def _s1_grd(archive: Path, entry: dict[str, Any], pub: Published) -> None:
    """One S1 acquisition as a GRD product (:func:`.grd.write_grd_product`, cached under
    ``root/grd``) in Planetary Computer's layout and its ``sentinel-1-grd`` item."""
    from ..geo import Grid
    from ..sar.manifest import parse_manifest, planetary_computer_href
    from . import grd
    from .plan import S1_PLAN

    index = next(i for i, p in enumerate(S1_PLAN) if entry["path"] == f"s1/{p.stem}.tif")
    plan = S1_PLAN[index]
    with rasterio.open(archive / entry["path"]) as f:
        truth = f.read().astype(np.float32)
        grid = Grid(f.crs.to_string(), f.transform, f.width, f.height)
    made = grd.write_grd_product(pub.root / "grd", plan, index, grid, truth)
    safe = pub.root / "grd" / made["safe"]
    pid = made["product_id"]
    t0 = dt.datetime.fromisoformat(made["start"])
    t1 = dt.datetime.fromisoformat(made["stop"])
    folder = (f"{PC_S1[0]}/{PC_S1[1]}/GRD/{t0.year}/{t0.month}/{t0.day}/IW/DV/{pid}")
    manifest = (safe / "manifest.safe").read_bytes()
    info = parse_manifest(manifest)
    files = {"manifest.safe": safe / "manifest.safe"}
    for pol, kinds in info.files.items():
        for kind, href in kinds.items():
            if kind == "rfi":  # the demo writes no RFI annotation: the real product's
                continue
            files[planetary_computer_href(href)] = safe / href.removeprefix("./")
    rfi = {"vv": "annotation/rfi/rfi-iw-vv.xml", "vh": "rfi-iw-vh.xml"}  # as recorded
    rfi_xml = grd.SOURCE / "annotation" / "rfi" / f"rfi-{grd.SOURCE_STEM}.xml.xz"
    for rel, src in files.items():
        dst = pub.root / "blob" / folder / rel
        if rel.startswith("measurement/"):  # PC serves them as COGs (GCPs, no CRS)
            _cog_copy(src, dst)
        else:
            _link(src, dst)
    for rel in rfi.values():
        path = pub.root / "blob" / folder / rel
        if not path.exists():
            import lzma

            with atomic_path(path) as tmp:
                tmp.write_bytes(lzma.decompress(rfi_xml.read_bytes()))
    href = f"{{PC}}/{folder}"
    xml = "application/xml"
    assets: dict[str, Any] = {"safe-manifest": {
        "href": f"{href}/manifest.safe", "type": xml, "title": "Manifest File",
        "roles": ["metadata"]}}
    for pol in ("vh", "vv"):
        assets[f"schema-product-{pol}"] = {"href": f"{href}/{rfi[pol]}", "type": xml,
                                           "title": "Product Schema", "roles": ["metadata"]}
        assets[f"schema-calibration-{pol}"] = {
            "href": f"{href}/annotation/calibration/calibration-iw-{pol}.xml", "type": xml,
            "title": "Calibration Schema", "roles": ["metadata"]}
        assets[f"schema-noise-{pol}"] = {
            "href": f"{href}/annotation/calibration/noise-iw-{pol}.xml", "type": xml,
            "title": "Noise Schema", "roles": ["metadata"]}
    for pol in ("vh", "vv"):
        assets[pol] = {"href": f"{href}/measurement/iw-{pol}.tiff",
                       "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                       "title": pol.upper(), "roles": ["data"],
                       "eo:bands": [{"name": pol.upper()}]}
    ring = [list(p) for p in made["footprint"]]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    with rasterio.open(safe / made["assets"]["vv"]) as f:
        shape = [f.width, f.height]
    mission = pid[:3]
    pub.items.append({
        "type": "Feature", "stac_version": "1.0.0", "id": pid[:-5], "collection": S1_COLLECTION,
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "geometry": {"type": "Polygon", "coordinates": [ring]}, "links": [],
        "assets": assets,
        "properties": {
            "sar:frequency_band": "C", "sar:center_frequency": 5.405,
            "sar:observation_direction": "right", "sar:instrument_mode": "IW",
            "sar:polarizations": ["VV", "VH"], "sar:product_type": "GRD",
            "sar:resolution_range": 20, "sar:resolution_azimuth": 22,
            "sar:pixel_spacing_range": 10, "sar:pixel_spacing_azimuth": 10,
            "sar:looks_range": 5, "sar:looks_azimuth": 1, "sar:looks_equivalent_number": 4.4,
            "sat:platform_international_designator": "2014-016A" if mission == "S1A"
            else "2016-025A",
            "sat:orbit_state": info.orbit_pass.lower(),
            "sat:absolute_orbit": info.absolute_orbit,
            "sat:relative_orbit": info.relative_orbit,
            "platform": info.platform, "constellation": "sentinel-1",
            "start_datetime": _pc_time(t0), "end_datetime": _pc_time(t1),
            "s1:instrument_configuration_ID": "6", "s1:datatake_id": str(int(pid[-11:-5], 16)),
            "s1:product_timeliness": "Fast-24h", "s1:processing_level": "1",
            "s1:resolution": "high", "s1:orbit_source": "RESORB", "s1:slice_number": "1",
            "s1:total_slices": "1", "s1:shape": shape,
            "datetime": _iso(t0 + (t1 - t0) / 2)}})


def _dem(bounds: list[float], pub: Published) -> None:
    """Copernicus DEM tiles over ``bounds`` (lon/lat): 0 m above the geoid everywhere (the
    demo ground's heights), each a ``cop-dem-glo-30``-shaped item (recorded item:
    tests/fixtures/stac/README.md)."""
    from .grd import DEM_HEIGHT_M

    px = 1.0 / DEM_TILE_PX
    for lat in range(math.floor(bounds[1]), math.floor(bounds[3]) + 1):
        for lon in range(math.floor(bounds[0]), math.floor(bounds[2]) + 1):
            name = (f"Copernicus_DSM_COG_10_{'N' if lat >= 0 else 'S'}{abs(lat):02d}_00_"
                    f"{'E' if lon >= 0 else 'W'}{abs(lon):03d}_00_DEM")
            rel = f"{PC_DEM[0]}/{PC_DEM[1]}/COP30_hh/{name}.tif"
            west, north = lon - px / 2, lat + 1 + px / 2
            transform = Affine(px, 0.0, west, 0.0, -px, north)
            path = pub.root / "blob" / rel
            if not path.exists():
                heights = np.full((DEM_TILE_PX, DEM_TILE_PX), DEM_HEIGHT_M, np.float32)
                _write(path, heights, "EPSG:4326", transform, "COG", COMPRESS="DEFLATE",
                       BLOCKSIZE="1024", OVERVIEWS="NONE")
            east, south = west + 1.0, north - 1.0
            pub.items.append({
                "type": "Feature", "stac_version": "1.0.0", "id": name,
                "collection": DEM_COLLECTION, "bbox": [west, south, east, north],
                "geometry": {"type": "Polygon", "coordinates": [[
                    [east, south], [east, north], [west, north], [west, south],
                    [east, south]]]},
                "links": [],
                "properties": {"platform": "tandem-x", "gsd": 30, "proj:epsg": 4326,
                               "proj:transform": list(transform)[:6],
                               "proj:shape": [DEM_TILE_PX, DEM_TILE_PX],
                               "grid:code": f"CDEM-{name[22:25]}{name[29:33]}",
                               "datetime": "2021-04-22T00:00:00Z"},
                "assets": {"data": {
                    "href": f"{{PC}}/{rel}",
                    "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                    "title": "Data", "roles": ["data"],
                    "raster:bands": [{"sampling": "point", "data_type": "float32",
                                      "spatial_resolution": 30, "unit": "meter"}]}}})


def modis_struct_metadata(h: int, v: int) -> str:
    """An MCD12Q1 granule's HDF-EOS2 ``StructMetadata.0`` for tile h/v (the layout of a real
    granule's, see tests/fixtures/stac/README.md)."""
    size = MODIS_TILE_PX * MODIS_PIXEL_M
    x0, y0 = MODIS_ORIGIN[0] + h * size, MODIS_ORIGIN[1] - v * size
    fields = "".join(
        f"\t\t\tOBJECT=DataField_{i}\n\t\t\t\tDataFieldName=\"{b}\"\n"
        f"\t\t\t\tDataType=DFNT_UINT8\n\t\t\t\tDimList=(\"YDim\",\"XDim\")\n"
        f"\t\t\t\tCompressionType=HDFE_COMP_DEFLATE\n\t\t\t\tDeflateLevel=6\n"
        f"\t\t\tEND_OBJECT=DataField_{i}\n" for i, b in enumerate(LC_MODIS_BANDS, start=1))
    return ("GROUP=SwathStructure\nEND_GROUP=SwathStructure\nGROUP=GridStructure\n"
            "\tGROUP=GRID_1\n\t\tGridName=\"MCD12Q1\"\n"
            f"\t\tXDim={MODIS_TILE_PX}\n\t\tYDim={MODIS_TILE_PX}\n"
            f"\t\tUpperLeftPointMtrs=({x0:.6f},{y0:.6f})\n"
            f"\t\tLowerRightMtrs=({x0 + size:.6f},{y0 - size:.6f})\n"
            "\t\tProjection=GCTP_SNSOID\n"
            "\t\tProjParams=(6371007.181000,0,0,0,0,0,0,0,0,0,0,0,0)\n"
            "\t\tSphereCode=-1\n\t\tGridOrigin=HDFE_GD_UL\n"
            "\t\tGROUP=Dimension\n\t\tEND_GROUP=Dimension\n"
            f"\t\tGROUP=DataField\n{fields}\t\tEND_GROUP=DataField\n"
            "\t\tGROUP=MergedFields\n\t\tEND_GROUP=MergedFields\n"
            "\tEND_GROUP=GRID_1\nEND_GROUP=GridStructure\n"
            "GROUP=PointStructure\nEND_GROUP=PointStructure\nEND\n")


def _modis(src: Path, year: int, pub: Published) -> None:
    """One granule per sinusoidal tile the archive's land cover touches."""
    with rasterio.open(src) as f:
        lc, transform = f.read(), f.transform
    size = MODIS_TILE_PX * MODIS_PIXEL_M
    # the cutout's first cell in the global 463 m grid
    gc = round((transform.c - MODIS_ORIGIN[0]) / MODIS_PIXEL_M)
    gr = round((MODIS_ORIGIN[1] - transform.f) / MODIS_PIXEL_M)
    hh, ww = lc.shape[1:]
    for v in range(gr // MODIS_TILE_PX, (gr + hh - 1) // MODIS_TILE_PX + 1):
        for h in range(gc // MODIS_TILE_PX, (gc + ww - 1) // MODIS_TILE_PX + 1):
            r0, c0 = v * MODIS_TILE_PX - gr, h * MODIS_TILE_PX - gc  # tile origin in cutout
            rows = slice(max(0, r0), min(hh, r0 + MODIS_TILE_PX))
            cols = slice(max(0, c0), min(ww, c0 + MODIS_TILE_PX))
            _granule(lc[:, rows, cols], rows.start - r0, cols.start - c0, h, v, year, pub,
                     size)


def _granule(part: np.ndarray, r0: int, c0: int, h: int, v: int, year: int, pub: Published,
             size: float) -> None:
    from pyhdf.SD import SD, SDC

    gid = f"MCD12Q1.A{year}001.h{h:02d}v{v:02d}.061.2022169160720"
    rel = f"lp-prod-protected/MCD12Q1.061/{gid}/{gid}.hdf"
    path = pub.root / "earthdata" / rel
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.unlink(missing_ok=True)
            sd = SD(str(tmp), SDC.WRITE | SDC.CREATE)
            for b, layer in zip(LC_MODIS_BANDS, part):
                full = np.full((MODIS_TILE_PX, MODIS_TILE_PX), 255, np.uint8)
                full[r0:r0 + layer.shape[0], c0:c0 + layer.shape[1]] = layer.astype(np.uint8)
                sds = sd.create(b, SDC.UINT8, full.shape)
                sds.setcompress(SDC.COMP_DEFLATE, 6)
                sds.setfillvalue(255)
                sds[:] = full
                sds.endaccess()
            sd.attr("HDFEOSVersion").set(SDC.CHAR8, "HDFEOS_V2.19")
            sd.attr("StructMetadata.0").set(SDC.CHAR8, modis_struct_metadata(h, v))
            sd.end()
    x0, y0 = MODIS_ORIGIN[0] + h * size, MODIS_ORIGIN[1] - v * size
    to = Transformer.from_crs(MODIS_SINUSOIDAL, "EPSG:4326", always_xy=True)
    xs = np.r_[np.linspace(x0, x0 + size, 9), np.linspace(x0, x0 + size, 9),
               np.full(9, x0), np.full(9, x0 + size)]
    ys = np.r_[np.full(9, y0), np.full(9, y0 - size), np.linspace(y0 - size, y0, 9),
               np.linspace(y0 - size, y0, 9)]
    lon, lat = to.transform(xs, ys)
    bbox = [round(float(np.min(lon)), 6), round(float(np.min(lat)), 6),
            round(float(np.max(lon)), 6), round(float(np.max(lat)), 6)]
    pub.items.append({
        "type": "Feature", "stac_version": "1.0.0", "id": gid, "collection": LC_COLLECTION,
        "bbox": bbox, "geometry": _polygon(bbox), "links": [],
        "properties": {"datetime": f"{year}-01-01T00:00:00.000Z",
                       "start_datetime": f"{year}-01-01T00:00:00.000Z",
                       "end_datetime": f"{year}-12-31T23:59:59.999Z"},
        "assets": {"data": {"href": f"{{EARTHDATA}}/{rel}", "title": f"Download {gid}.hdf"},
                   "metadata": {"href": f"{{EARTHDATA}}/{rel[:-4]}.cmr.xml",
                                "type": "application/xml"}}})


def _worldcover(entry: dict[str, Any], src: Path, pub: Published) -> None:
    """The archive's WorldCover tile as PC's ``esa-worldcover`` holds it: a COG under
    ``<account>/esa-worldcover/<version>/<year>/map/`` and an item of PC's shape."""
    from ..labels import WORLDCOVER_CLASSES, WORLDCOVER_VERSIONS

    version, year = entry["version"], int(entry["year"])
    name = Path(entry["path"]).name
    tile = name.split("_")[-2]  # ESA_WorldCover_10m_<year>_<version>_<tile>_Map.tif
    with rasterio.open(src) as f:
        arr, crs, transform = f.read(1), f.crs, f.transform
        bbox = _lonlat_bbox(f.crs, f.bounds)
    rel = f"{WC_ACCOUNT}/{WC_COLLECTION}/{version}/{year}/map/{name}"
    path = pub.root / "blob" / rel
    if not path.exists():
        _write(path, arr, crs, transform, "COG", nodata=0, COMPRESS="DEFLATE",
               BLOCKSIZE="256", OVERVIEWS="NONE")
    iid = name.removesuffix("_Map.tif")
    cog = "image/tiff; application=geotiff; profile=cloud-optimized"
    pub.items.append({
        "type": "Feature", "stac_version": "1.0.0", "id": iid, "collection": WC_COLLECTION,
        "bbox": bbox, "geometry": _polygon(bbox), "links": [],
        "stac_extensions": [
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/classification/v1.0.0/schema.json"],
        "assets": {"map": {
            "href": f"{{PC}}/{rel}", "type": cog, "title": "Land Cover Classes",
            "description": "Discrete classification according to the Land Cover "
                           "Classification System scheme developed by the United Nations "
                           "Food and Agriculture Organization",
            "raster:bands": [{"name": "Band1", "description": "Classification values",
                              "nodata": 0, "sampling": "area", "data_type": "uint8",
                              "spatial_resolution": 10}],
            "classification:classes": [{"value": c.value, "description": c.name,
                                        "color-hint": c.color} for c in WORLDCOVER_CLASSES],
            "proj:transform": list(transform)[:6], "proj:shape": list(arr.shape),
            "roles": ["data"]}},
        "properties": {
            "esa_worldcover:product_version": WORLDCOVER_VERSIONS[version][2],
            "esa_worldcover:product_tile": tile,
            "start_datetime": f"{year}-01-01T00:00:00Z",
            "end_datetime": f"{year}-12-31T23:59:59Z", "datetime": None,
            "description": "ESA WorldCover product at 10m resolution",
            "mission": "sentinel-1, sentinel-2",
            "platform": "sentinel-1a, sentinel-1b, sentinel-2a, sentinel-2b",
            "instruments": ["c-sar", "msi"], "proj:epsg": 4326,
            "grid:code": f"ESAWORLDCOVER-{tile}",
            "demo:note": "the demo archive's simulated WorldCover window of this tile"}})


def publish(archive: Path, root: Path, l2a: bool = True,
            seasons: tuple[str, ...] | None = None) -> Published:
    """Write the demo archive's sources in the real layouts under ``root`` (files that exist
    are kept) and return what to serve: every acquisition, or those of ``seasons``. See the
    module doc."""
    archive, root = Path(archive), Path(root)
    meta = json.loads((archive / "archive.json").read_text())
    pub = Published(root)
    acqs = [e for e in meta["acquisitions"] if e["modality"] in ("lc", "worldcover")
            or seasons is None or e.get("season") in seasons]
    meta["acquisitions"] = acqs
    s2 = [e for e in meta["acquisitions"] if e["modality"] == "s2"]
    for k, e in enumerate(s2):
        with rasterio.open(archive / e["path"]) as f:
            l1c, grid = f.read(), (f.crs, f.transform)
            bbox = _lonlat_bbox(f.crs, f.bounds)
        _l1c(e, l1c, grid, pub, bbox, k)
        if l2a:
            _l2a(archive, e, l1c, grid, pub, bbox, k)
    boxes = []
    for e in (x for x in meta["acquisitions"] if x["modality"] == "s1"):
        with rasterio.open(archive / e["path"]) as f:
            boxes.append(_lonlat_bbox(f.crs, f.bounds))
        _s1_grd(archive, e, pub)
    if boxes:
        _dem([min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
              max(b[3] for b in boxes)], pub)
    for e in (x for x in meta["acquisitions"] if x["modality"] == "lc"):
        _modis(archive / e["path"], int(e["year"]), pub)
    for e in (x for x in meta["acquisitions"] if x["modality"] == "worldcover"):
        _worldcover(e, archive / e["path"], pub)
    atomic_write_text(root / "items.json", json.dumps(pub.items, indent=1) + "\n")
    return pub


@dataclass
class Services:
    """The running loopback services and what reads them."""

    stac: StacApiServer
    s3: S3Server
    blob: FileServer  # PC's storage, SAS-protected: L2A COGs, S1 GRD products, DEM tiles
    earthdata: FileServer  # MODIS granules behind a bearer token
    items: list[dict[str, Any]]
    cache: Path

    def section(self, level: str = "l1c", labels: bool = False,
                **extra: Any) -> dict[str, Any]:
        """The ``backend.stac`` section reading these services (``labels``: ESA WorldCover
        too, from the Planetary Computer layout)."""
        s2 = {"profile": "demo-cdse", "level": "l1c"} if level == "l1c" else \
            {"profile": "demo-pc", "level": "l2a"}
        if labels:
            extra = {"labels": {"profile": "demo-pc"}, **extra}
        return {
            "s2": s2, "s1": {"profile": "demo-pc", "product": "grd"},
            "lc": {"profile": "demo-earthdata"}, "dem": {"profile": "demo-pc"},
            "profiles": {
                "demo-cdse": {"extends": "cdse", "title": "CDSE layout on loopback",
                              "endpoint": self.stac.url,
                              "s3": {"endpoint": self.s3.endpoint, "https": False,
                                     "virtual_hosting": False}},
                "demo-pc": {"extends": "planetary-computer",
                            "title": "Planetary Computer layout on loopback",
                            "endpoint": self.stac.url,
                            "signing": {"endpoint": self.blob.url + "/api/sas/v1/token",
                                        "path_style": True}},
                "demo-earthdata": {"extends": "earthdata", "title": "CMR-STAC on loopback",
                                   "endpoint": self.stac.url}},
            "cache": str(self.cache), "timeout_s": 10, "retries": 2, **extra}


def _resolve(items: list[dict[str, Any]], urls: dict[str, str]) -> list[dict[str, Any]]:
    text = json.dumps(items)
    for k, v in urls.items():
        text = text.replace("{" + k + "}", v)
    return json.loads(text)


@contextlib.contextmanager
def demo_env() -> Iterator[dict[str, str]]:
    """The demo's fake credentials in the environment while the block runs (then the
    previous values are back)."""
    old = {k: os.environ.get(k) for k in DEMO_ENV}
    os.environ.update(DEMO_ENV)
    try:
        yield dict(DEMO_ENV)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def serve(published: Published, cache: Path) -> Iterator[Services]:
    """Start the loopback services over ``published`` (stopped when the block ends)."""
    with contextlib.ExitStack() as stack:
        s3 = stack.enter_context(S3Server())
        s3.put("eodata", published.s3_objects)
        blob = stack.enter_context(FileServer(published.root / "blob", sas=True))
        earthdata = stack.enter_context(FileServer(published.root / "earthdata",
                                                   bearer=DEMO_ENV["EARTHDATA_TOKEN"]))
        items = _resolve(published.items, {"PC": blob.url, "EARTHDATA": earthdata.url})
        stac = stack.enter_context(StacApiServer(items, page_size=10))
        yield Services(stac, s3, blob, earthdata, items, Path(cache))
