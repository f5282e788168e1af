"""The demo's Sentinel-1 as raw GRD products: its simulated sigma0 published in radar
geometry, the way Planetary Computer's ``sentinel-1-grd`` serves real ones, so that a STAC
demo runs the whole GRD chain (:mod:`sen12ms_build.sar`) and can be checked against the
demo's truth.

A physically consistent product, without inventing an orbit: the real S1B IW GRDH product
shipped in ``data/s1b_grd`` (its XML only) is moved onto the demo ground.

1. rotation: the real orbit state vectors are rotated rigidly in ECEF so that the real
   product's ground point at :data:`ANCHOR` (line, pixel) lands on the demo ground's centre
   (ascending acquisitions also turn 180 degrees about the local vertical there: heading
   north, still looking right); times shift so that the anchor is sensed at the plan's time;
2. the slant-to-ground polynomials: every record becomes the anchor's record (the real
   ones follow the real terrain's reference height, which means nothing here), so ground
   range is one smooth function of slant range;
3. the geolocation grid is recomputed for the rotated orbit at the demo's heights (0 m above
   the EGM96 geoid, :data:`DEM_HEIGHT_M`), and written into the annotation and as the
   measurement TIFFs' GCPs;
4. DN: every radar pixel's ground position (the inverse of the chain's map-to-radar
   geometry, a cubic fitted in line and pixel) samples the truth sigma0 bilinearly in
   linear power; DN = sqrt(sigma0 * A**2 + N) with the real sigmaNought LUT A and thermal
   noise N, rounded stochastically (seeded). The measurement has the real product's size
   (26102 x 16705), tiled and sparse: only the ground's footprint holds data, DN 0 elsewhere.

The calibration and noise LUTs are the real ones (VH gets VV's: the source ships VV only).
Everything is deterministic. Production code never imports this module.
"""

from __future__ import annotations

import lzma
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.control import GroundControlPoint
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from ..geo import Grid
from ..products import S1_BANDS
from ..raster.io import atomic_path, atomic_write_text
from ..sar.annotation import parse_annotation
from ..sar.calibration import parse_calibration
from ..sar.geoid import undulation
from ..sar.geometry import RadarGeometry, geodetic_to_ecef, incidence_angle
from ..sar.manifest import parse_manifest
from ..sar.noise import parse_noise
from ..sar.terrain import geocode_grid
from .plan import S1Plan

SOURCE_NAME = "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371"
SOURCE = Path(__file__).resolve().parent / "data" / "s1b_grd" / f"{SOURCE_NAME}.SAFE"
SOURCE_STEM = "s1b-iw-grd-vv-20211223t051122-20211223t051147-030148-039993-001"
#: The real product's (line, pixel) placed on the demo ground's centre: a geolocation grid
#: node of sub-swath IW2, 722 pixels from the IW2/IW3 seam, so the demo crosses a seam.
ANCHOR = (8020, 16978)
#: Heights of the demo ground above the EGM96 geoid (metres): the STAC demo's DEM is this
#: constant on the scene grid (the Eastern Shore is within a few metres of sea level).
DEM_HEIGHT_M = 0.0
#: Relative orbits given to the demo's passes (plausible for the site, not real tracks).
RELATIVE_ORBIT = {"ASCENDING": 106, "DESCENDING": 4}
SEED_DN = 20170103
_TIME = re.compile(rb"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)")


def source_xml(kind: str) -> bytes:
    """The real product's VV ``annotation``, ``calibration`` or ``noise`` XML, or its
    ``manifest``."""
    if kind == "manifest":
        return (SOURCE / "manifest.safe").read_bytes()
    rel = {"annotation": f"annotation/{SOURCE_STEM}.xml",
           "calibration": f"annotation/calibration/calibration-{SOURCE_STEM}.xml",
           "noise": f"annotation/calibration/noise-{SOURCE_STEM}.xml"}[kind]
    return lzma.decompress((SOURCE / (rel + ".xz")).read_bytes())


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation matrix about a unit ``axis`` by ``angle`` radians."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def demo_rotation(src: np.ndarray, dst: np.ndarray, ascending: bool) -> np.ndarray:
    """The rotation taking ECEF direction ``src`` onto ``dst`` (then, for ``ascending``, a
    half turn about ``dst``)."""
    a, b = src / np.linalg.norm(src), dst / np.linalg.norm(dst)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis)
    rot = np.eye(3) if s < 1e-15 else _rotation(axis / s, np.arctan2(s, float(a @ b)))
    return _rotation(b, np.pi) @ rot if ascending else rot


def _shift_times(xml: bytes, dt: timedelta) -> bytes:
    def sub(m: re.Match) -> bytes:
        raw = m.group(1).decode()
        t = datetime.fromisoformat(raw) + dt
        frac = raw.split(".")[1] if "." in raw else ""
        text = t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{t.microsecond:06d}"[:len(frac) + 1]
                                                 if frac else "")
        return text.encode()

    return _TIME.sub(sub, xml)


def _set(elem: ET.Element, path: str, value: str) -> None:
    found = elem.find(path)
    if found is None:
        raise KeyError(path)
    found.text = value


def _ground_points(geometry: RadarGeometry, line: np.ndarray, pixel: np.ndarray,
                   height: np.ndarray, guess: np.ndarray) -> np.ndarray:
    """ECEF (n, 3) of the ground points at ``height`` (ellipsoidal, (n,)) that the product
    sees at (``line``, ``pixel``): Newton on (lat, lon) with the range-Doppler model, every
    point at once (a finite-difference Jacobian of 1e-5 degrees)."""
    to_geo = Transformer.from_crs("EPSG:4978", "EPSG:4326", always_xy=True)
    lon, lat, _ = to_geo.transform(guess[:, 0], guess[:, 1], guess[:, 2])
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    n, d = len(lat), 1e-5
    for _ in range(8):
        pts = geodetic_to_ecef(np.concatenate([lat, lat + d, lat]),
                               np.concatenate([lon, lon, lon + d]), np.tile(height, 3))
        rc = geometry.radar_coordinates(pts)
        ln, px = rc.line.reshape(3, n), rc.pixel.reshape(3, n)
        f0, f1 = ln[0] - line, px[0] - pixel
        a, b = (ln[1] - ln[0]) / d, (ln[2] - ln[0]) / d  # d line / d lat, d lon
        c, e = (px[1] - px[0]) / d, (px[2] - px[0]) / d  # d pixel / d lat, d lon
        det = a * e - b * c
        lat, lon = lat - (e * f0 - b * f1) / det, lon - (a * f1 - c * f0) / det
        if max(np.abs(f0).max(), np.abs(f1).max()) < 1e-4:
            break
    return geodetic_to_ecef(lat, lon, height)


@dataclass(frozen=True)
class DemoGrdDocs:
    """One demo acquisition's XML documents (bytes) and facts."""

    product_id: str
    stem: dict[str, str]  # pol -> file stem (s1a-iw-grd-vv-...)
    manifest: bytes
    annotation: dict[str, bytes]
    calibration: dict[str, bytes]
    noise: dict[str, bytes]
    start: datetime
    stop: datetime


def demo_documents(plan: S1Plan, index: int, grid: Grid) -> DemoGrdDocs:
    """The XML of the demo acquisition ``plan`` (see the module docstring, steps 1-3).

    Args:
        plan: the acquisition (time, platform, pass).
        index: its position in the plan (for the datatake id).
        grid: the demo ground's grid (its centre is where the anchor lands).
    """
    ann_src = parse_annotation(source_xml("annotation"))
    src_geo = RadarGeometry(ann_src)
    g = ann_src.geolocation
    k = int(np.flatnonzero((g.line == ANCHOR[0]) & (g.pixel == ANCHOR[1]))[0])
    src_anchor = geodetic_to_ecef(g.latitude[k], g.longitude[k], g.height[k])
    left, bottom, right, top = grid.bounds
    lon0, lat0 = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(
        (left + right) / 2, (bottom + top) / 2)
    h0 = DEM_HEIGHT_M + float(undulation(lat0, lon0))
    rot = demo_rotation(src_anchor, geodetic_to_ecef(lat0, lon0, h0),
                        plan.orbit_pass == "ASCENDING")
    anchor_time = ann_src.epoch + np.timedelta64(
        int(round(src_geo.zero_doppler_time(src_anchor[None])[0] * 1e9)), "ns")
    dt = plan.sensing_time.replace(tzinfo=None) - anchor_time.astype("datetime64[us]").item()
    mission = "S1A" if plan.platform.endswith("1A") else "S1B"

    # annotation: rotated orbit, one slant-to-ground record, then the geolocation grid
    root = ET.fromstring(_shift_times(source_xml("annotation"), dt))
    _set(root, "adsHeader/missionId", mission)
    _set(root, "generalAnnotation/productInformation/pass", plan.orbit_pass.title())
    for o in root.findall("generalAnnotation/orbitList/orbit"):
        for kind in ("position", "velocity"):
            v = rot @ np.array([float(o.findtext(f"{kind}/{a}")) for a in "xyz"])
            for a, val in zip("xyz", v):
                _set(o, f"{kind}/{a}", f"{val:.9e}")
    records = root.findall("coordinateConversion/coordinateConversionList/coordinateConversion")
    stg = ann_src.slant_to_ground
    nearest = int(np.argmin(np.abs(stg.time - src_geo.zero_doppler_time(src_anchor[None])[0])))
    keep = records[nearest]
    for rec in records:
        for tag in ("sr0", "srgrCoefficients", "gr0", "grsrCoefficients"):
            rec.find(tag).text = keep.find(tag).text
    for t in root.findall("generalAnnotation/terrainHeightList/terrainHeight"):
        _set(t, "value", f"{DEM_HEIGHT_M:.15e}")
    ann_new = parse_annotation(ET.tostring(root))
    geometry = RadarGeometry(ann_new)
    to_geo = Transformer.from_crs("EPSG:4978", "EPSG:4326", always_xy=True)
    nodes = root.findall("geolocationGrid/geolocationGridPointList/geolocationGridPoint")
    lines = np.array([float(nd.findtext("line")) for nd in nodes])
    pixels = np.array([float(nd.findtext("pixel")) for nd in nodes])
    guess = geodetic_to_ecef(np.array([float(nd.findtext("latitude")) for nd in nodes]),
                             np.array([float(nd.findtext("longitude")) for nd in nodes]),
                             np.zeros(len(nodes))) @ rot.T
    glon, glat, _ = to_geo.transform(guess[:, 0], guess[:, 1], guess[:, 2])
    heights = DEM_HEIGHT_M + np.asarray(undulation(np.asarray(glat), np.asarray(glon)),
                                        np.float64)
    points = _ground_points(geometry, lines, pixels, heights, guess)
    lons, lats, _ = to_geo.transform(points[:, 0], points[:, 1], points[:, 2])
    rc = geometry.radar_coordinates(points)
    inc = incidence_angle(points, rc.satellite, np.asarray(lats), np.asarray(lons))
    for k, node in enumerate(nodes):
        t = ann_new.epoch + np.timedelta64(int(round(rc.time[k] * 1e9)), "ns")
        _set(node, "azimuthTime", str(t.astype("datetime64[us]")))
        _set(node, "slantRangeTime", f"{2 * rc.slant_range[k] / 299_792_458.0:.15e}")
        _set(node, "latitude", f"{lats[k]:.15e}")
        _set(node, "longitude", f"{lons[k]:.15e}")
        _set(node, "height", f"{heights[k]:.15e}")
        _set(node, "incidenceAngle", f"{inc[k]:.15e}")
        _set(node, "elevationAngle", f"{rc.look_angle[k]:.15e}")
    annotation_vv = ET.tostring(root, encoding="utf-8", xml_declaration=True)

    start = datetime.fromisoformat(root.findtext("adsHeader/startTime")).replace(
        tzinfo=timezone.utc)
    stop = datetime.fromisoformat(root.findtext("adsHeader/stopTime")).replace(
        tzinfo=timezone.utc)
    rel = RELATIVE_ORBIT[plan.orbit_pass]
    absolute = 175 * 100 + rel - 1 + (27 if mission == "S1B" else 73)  # plausible, not real
    datatake = 0x3F000 + index
    product_id = (f"{mission}_IW_GRDH_1SDV_{start:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}_"
                  f"{absolute:06d}_{datatake:06X}_{index:04X}")
    stems = {pol: (f"{mission.lower()}-iw-grd-{pol.lower()}-{start:%Y%m%dt%H%M%S}-"
                   f"{stop:%Y%m%dt%H%M%S}-{absolute:06d}-{datatake:06x}-"
                   f"{1 if pol == 'VV' else 2:03d}") for pol in S1_BANDS}

    def for_pol(xml: bytes, pol: str) -> bytes:
        return re.sub(rb"<polarisation>VV</polarisation>",
                      f"<polarisation>{pol}</polarisation>".encode(), xml).replace(
            b"<missionId>S1B</missionId>", f"<missionId>{mission}</missionId>".encode())

    cal = _shift_times(source_xml("calibration"), dt)
    noise = _shift_times(source_xml("noise"), dt)
    manifest = _demo_manifest(plan, dt, mission, rel, absolute, datatake, stems)
    return DemoGrdDocs(product_id, stems, manifest,
                       {p: for_pol(annotation_vv, p) for p in S1_BANDS},
                       {p: for_pol(cal, p) for p in S1_BANDS},
                       {p: for_pol(noise, p) for p in S1_BANDS}, start, stop)


def _demo_manifest(plan: S1Plan, dt: timedelta, mission: str, rel: int, absolute: int,
                   datatake: int, stems: dict[str, str]) -> bytes:
    text = _shift_times(source_xml("manifest"), dt).decode()
    for pol, src in (("vv", SOURCE_STEM),
                     ("vh", SOURCE_STEM.replace("-vv-", "-vh-").replace("-001", "-002"))):
        text = text.replace(src, stems[pol.upper()])
        # the manifest's data object ids spell the file names without dashes
        text = text.replace(src.replace("-", ""), stems[pol.upper()].replace("-", ""))
    text = re.sub(r"<safe:number>B</safe:number>", f"<safe:number>{mission[-1]}</safe:number>",
                  text)
    text = re.sub(r"<s1:pass>\w+</s1:pass>", f"<s1:pass>{plan.orbit_pass}</s1:pass>", text)
    text = re.sub(r'(<safe:relativeOrbitNumber type="\w+">)\d+', rf"\g<1>{rel}", text)
    text = re.sub(r'(<safe:orbitNumber type="\w+">)\d+', rf"\g<1>{absolute}", text)
    text = re.sub(r"(<s1sarl1:missionDataTakeID>)\d+", rf"\g<1>{datatake}", text)
    return text.encode()


def radar_dn(docs: DemoGrdDocs, grid: Grid, sigma0_db: np.ndarray,
             seed: int = SEED_DN) -> tuple[tuple[slice, slice], dict[str, np.ndarray]]:
    """DN of the ground's footprint in radar geometry (module docstring, step 4).

    Args:
        docs: the acquisition's documents (:func:`demo_documents`).
        grid: the ground's grid.
        sigma0_db: (2, H, W) float32 truth (VV, VH dB) on ``grid``, NaN nodata.
    Returns:
        ((rows, cols) window of the product, {pol: (h, w) uint16 DN, 0 off the ground}).
    """
    ann = parse_annotation(docs.annotation["VV"])
    geometry = RadarGeometry(ann)
    left, bottom, right, top = grid.bounds
    heights = np.full(grid.shape, DEM_HEIGHT_M) + _geoid_on(grid)
    geo = geocode_grid(geometry, grid, heights)
    l0 = int(np.floor(np.nanmin(geo.line)))
    l1 = int(np.ceil(np.nanmax(geo.line))) + 1
    p0 = int(np.floor(np.nanmin(geo.pixel)))
    p1 = int(np.ceil(np.nanmax(geo.pixel))) + 1
    # inverse mapping: map column and row as cubics of (line, pixel)
    step = max(1, int(np.sqrt(grid.width * grid.height / 40000)))
    rr, cc = np.mgrid[0:grid.height:step, 0:grid.width:step]
    ln, px = geo.line[rr, cc].astype(np.float64), geo.pixel[rr, cc].astype(np.float64)
    u, v = (ln - l0) / max(l1 - l0, 1), (px - p0) / max(p1 - p0, 1)

    def basis(a, b):
        return np.stack([a ** i * b ** j for i in range(4) for j in range(4 - i)], -1)

    coef, *_ = np.linalg.lstsq(basis(u.ravel(), v.ravel()),
                               np.column_stack([cc.ravel(), rr.ravel()]), rcond=None)
    lines, pixels = np.arange(l0, l1), np.arange(p0, p1)
    lu, pv = np.meshgrid((lines - l0) / max(l1 - l0, 1), (pixels - p0) / max(p1 - p0, 1),
                         indexing="ij")
    col_row = basis(lu.ravel(), pv.ravel()) @ coef
    col = col_row[:, 0].reshape(lu.shape)
    row = col_row[:, 1].reshape(lu.shape)
    from ..sar.terrain import BilinearSampler

    sampler = BilinearSampler(row, col, grid.shape)
    out = {}
    rng = np.random.default_rng([seed, int(docs.start.timestamp())])
    for band, pol in enumerate(S1_BANDS):
        lin = sampler(np.power(10.0, sigma0_db[band] / 10.0).astype(np.float32))
        cal = parse_calibration(docs.calibration[pol]).lut.at(lines, pixels)
        eta = parse_noise(docs.noise[pol]).at(lines, pixels)
        power = lin.astype(np.float64) * cal.astype(np.float64) ** 2 + eta
        dn = np.floor(np.sqrt(np.where(np.isfinite(power), power, 0.0))
                      + rng.random(power.shape))
        dn = np.clip(dn, 1, 65535).astype(np.uint16)
        dn[~np.isfinite(lin)] = 0
        out[pol] = dn
    return (slice(l0, l1), slice(p0, p1)), out


def _geoid_on(grid: Grid) -> np.ndarray:
    from ..sar.chain import ellipsoidal_heights

    return ellipsoidal_heights(grid, np.zeros(grid.shape))


def pc_assets(product_id: str, stems: dict[str, str]) -> dict[str, str]:
    """Planetary Computer's asset keys of a product and the files of its SAFE folder they
    are (``sentinel-1-grd`` items: ``safe-manifest``, ``schema-calibration-vv``, ...,
    ``schema-product-vv`` (PC points it to the RFI annotation, which the demo does not
    write; the chain finds the product annotation through the manifest), ``vv``, ``vh``)."""
    out = {"safe-manifest": "manifest.safe"}
    for pol, stem in stems.items():
        p = pol.lower()
        out[f"schema-calibration-{p}"] = f"annotation/calibration/calibration-{stem}.xml"
        out[f"schema-noise-{p}"] = f"annotation/calibration/noise-{stem}.xml"
        out[p] = f"measurement/{stem}.tiff"
    return out


def write_grd_product(root: Path | str, plan: S1Plan, index: int, grid: Grid,
                      sigma0_db: np.ndarray) -> dict[str, Any]:
    """Write one demo acquisition as a SAFE folder ``root/<product_id>.SAFE`` (manifest,
    annotation, calibration and noise XML, measurement TIFFs of the real size with GCPs)
    and return its summary (product id, times, pass, relative orbit, footprint ring,
    folder, Planetary Computer asset files). Files are written atomically; an existing
    complete folder is kept."""
    docs = demo_documents(plan, index, grid)
    safe = Path(root) / f"{docs.product_id}.SAFE"
    (safe / "annotation" / "calibration").mkdir(parents=True, exist_ok=True)
    (safe / "measurement").mkdir(exist_ok=True)
    ann = parse_annotation(docs.annotation["VV"])
    gcps = [GroundControlPoint(row=float(r), col=float(c), x=float(x), y=float(y), z=float(z))
            for r, c, x, y, z in zip(ann.geolocation.line, ann.geolocation.pixel,
                                     ann.geolocation.longitude, ann.geolocation.latitude,
                                     ann.geolocation.height)]
    measurements = {pol: safe / "measurement" / f"{stem}.tiff"
                    for pol, stem in docs.stem.items()}
    if not all(p.exists() for p in measurements.values()):
        (rows, cols), dn = radar_dn(docs, grid, sigma0_db)
        for pol, path in measurements.items():
            _write_measurement(path, dn[pol], rows, cols, ann.lines, ann.samples, gcps)
    for pol, stem in docs.stem.items():
        for rel, data in ((f"annotation/{stem}.xml", docs.annotation[pol]),
                          (f"annotation/calibration/calibration-{stem}.xml",
                           docs.calibration[pol]),
                          (f"annotation/calibration/noise-{stem}.xml", docs.noise[pol])):
            _write_bytes(safe / rel, data)
    _write_bytes(safe / "manifest.safe", docs.manifest)
    info = parse_manifest(docs.manifest)
    ring = [(float(x), float(y)) for x, y in _footprint(ann)]
    return {"product_id": docs.product_id, "safe": safe.name,
            "start": docs.start.isoformat(), "stop": docs.stop.isoformat(),
            "platform": info.platform, "orbit_pass": info.orbit_pass,
            "relative_orbit": info.relative_orbit, "footprint": ring,
            "assets": pc_assets(docs.product_id, docs.stem), "simulated": True}


def _footprint(ann) -> list[tuple[float, float]]:
    g = ann.geolocation
    corners = [(g.line.min(), g.pixel.min()), (g.line.min(), g.pixel.max()),
               (g.line.max(), g.pixel.max()), (g.line.max(), g.pixel.min())]
    ring = []
    for line, pixel in corners:
        i = int(np.flatnonzero((g.line == line) & (g.pixel == pixel))[0])
        ring.append((round(float(g.longitude[i]), 6), round(float(g.latitude[i]), 6)))
    return ring + ring[:1]


def _write_bytes(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _write_measurement(path: Path, dn: np.ndarray, rows: slice, cols: slice, lines: int,
                       samples: int, gcps: Sequence[GroundControlPoint]) -> None:
    profile = {"driver": "GTiff", "width": samples, "height": lines, "count": 1,
               "dtype": "uint16", "tiled": True, "blockxsize": 512, "blockysize": 512,
               "compress": "deflate", "predictor": 2, "sparse_ok": True,
               "gcps": list(gcps), "crs": "EPSG:4326"}
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(dn, 1, window=Window(cols.start, rows.start, dn.shape[1],
                                               dn.shape[0]))


def write_demo_grd(archive: Path | str, out: Path | str | None = None) -> list[dict[str, Any]]:
    """Publish every S1 acquisition of a demo archive as a GRD product.

    Args:
        archive: a demo archive (``write_demo_archive``): its ``s1/*.tif`` (the truth
            sigma0 on the ground's grid) and ``archive.json``.
        out: folder of the SAFE products (default ``archive/grd``).
    Returns:
        One summary per product (:func:`write_grd_product`), also written to
        ``out/grd.json``.
    """
    import json

    from .plan import S1_PLAN

    archive = Path(archive)
    out = Path(out) if out is not None else archive / "grd"
    summaries = []
    for index, plan in enumerate(S1_PLAN):
        tif = archive / "s1" / f"{plan.stem}.tif"
        with rasterio.open(tif) as src:
            truth = src.read().astype(np.float32)
            grid = Grid(src.crs.to_string(), src.transform, src.width, src.height)
        entry = write_grd_product(out, plan, index, grid, truth)
        entry["truth"] = str(tif.relative_to(archive))
        summaries.append(entry)
    atomic_write_text(out / "grd.json", json.dumps(summaries, indent=2) + "\n")
    return summaries
