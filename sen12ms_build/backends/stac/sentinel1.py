"""Sentinel-1 from STAC: GRD items and their XML assets for the GRD chain, or sigma0 COGs.

Two product kinds (:mod:`.profiles`):

* ``s1-grd`` (Planetary Computer ``sentinel-1-grd``): VV/VH measurement COGs in radar
  geometry (GCPs, no CRS; the item's ``proj:*`` fields are wrong, titiler-openeo#338,
  stackstac#181) with the SAFE's XML as assets (``safe-manifest``,
  ``schema-calibration-{pol}``, ``schema-noise-{pol}``). The product annotation is found
  through the manifest (``schema-product-{pol}`` points at the RFI annotation in recorded
  items). :func:`grd_inputs` gathers what the GRD chain (``sen12ms_build.sar``) takes:
  identity, the three XML documents per polarisation and a ``read_dn(rows, cols)`` over
  the measurement COG; :func:`sigma0_on_grid` is the one call into the chain.
* ``s1-sigma0``: sigma0 in dB already on a projected grid (a mirror of processed data, or
  the offline demo's simulated SAR): read bilinearly onto the scene grid, as the Earth
  Engine path's export and warp do.

Acquisitions are combined newest on top (:data:`~sen12ms_build.products.S1_COMPOSITE`).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import xml.etree.ElementTree as ET
from typing import Any, Callable, Mapping
from urllib.parse import urljoin

import numpy as np

from ...geo import Grid
from ...products import S1, S1_BANDS
from .credentials import redact, strip_url
from .reader import AssetProblem, AssetReader, BandAsset, SourceUnavailable, read_stack

log = logging.getLogger(__name__)

#: Where the GRD chain lives (another branch of this project; wired by :func:`sigma0_on_grid`).
GRD_CHAIN = "sen12ms_build.sar.chain"
GRD_PRODUCT = "sen12ms_build.sar.product"


def grd_chain_available() -> bool:
    """Whether the Sentinel-1 GRD chain is installed in this build (found, not imported)."""
    try:
        return importlib.util.find_spec(GRD_CHAIN) is not None
    except ModuleNotFoundError:
        return False


def _time(raw: Any) -> dt.datetime:
    t = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00").replace(" ", "T"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def describe(item: Mapping[str, Any]) -> dict[str, Any]:
    """The scene record's view of an S1 item: id, time, orbit pass, relative orbit."""
    p = item.get("properties", {})
    return {"product_id": str(item["id"]), "file": str(item["id"]),
            "time": _time(p.get("datetime") or p.get("start_datetime")).isoformat(),
            "orbit_pass": str(p.get("sat:orbit_state", "")).upper(),
            "relative_orbit": p.get("sat:relative_orbit")}


def annotation_hrefs(manifest: bytes, manifest_href: str) -> dict[str, str]:
    """Polarisation (``vv``, ``vh`` ...) -> href of its product annotation, from a SAFE
    ``manifest.safe``: the data objects of representation ``s1Level1ProductSchema`` whose
    file lies in ``annotation/`` itself (not ``annotation/calibration`` or ``/rfi``).

    Raises:
        ValueError: the manifest is not XML or lists no product annotation.
    """
    try:
        root = ET.fromstring(manifest)
    except ET.ParseError as exc:
        raise ValueError(f"manifest is not XML ({exc})") from None
    base = manifest_href.split("?", 1)[0]
    out = {}
    for obj in root.iter():
        if not obj.tag.endswith("dataObject") or obj.get("repID") != "s1Level1ProductSchema":
            continue
        for loc in obj.iter():
            if loc.tag.endswith("fileLocation"):
                href = loc.get("href", "")
                parts = href.lstrip("./").split("/")
                if len(parts) == 2 and parts[0] == "annotation":
                    for pol in ("vv", "vh", "hh", "hv"):
                        if f"-{pol}-" in parts[1]:
                            out[pol] = urljoin(base, href)
    if not out:
        raise ValueError("manifest lists no product annotation (s1Level1ProductSchema)")
    return out


def grd_inputs(item: Mapping[str, Any], xml: Mapping[str, str],
               fetch: Callable[[str], bytes], reader: AssetReader,
               assets: Mapping[str, str]) -> dict[str, Any]:
    """What the GRD chain's ``GrdProduct`` holds, from one ``s1-grd`` item: ``product_id``,
    ``platform``, ``orbit_pass``, ``relative_orbit``, ``start``/``stop`` and per polarisation
    (``VV``, ``VH``) the ``annotation``, ``calibration`` and ``noise`` XML bytes and a
    ``read_dn(rows, cols)`` over the measurement COG (uint16 DN, radar geometry).

    Args:
        xml: the product's XML asset keys (``manifest``, ``calibration``, ``noise``;
            ``{pol}`` stands for the lower-case polarisation).
        fetch: href -> bytes (signed and retried by the caller).
        assets: band (``VV``/``VH``) -> measurement asset key.

    Raises:
        AssetProblem: an asset is missing or the manifest names no annotation.
    """
    iid, a, p = str(item["id"]), item.get("assets", {}), item.get("properties", {})

    def href(key: str) -> str:
        if key not in a:
            raise AssetProblem(iid, key, "missing from the item")
        return str(a[key]["href"])

    man_href = href(xml.get("manifest", "safe-manifest"))
    try:
        ann = annotation_hrefs(fetch(man_href), man_href)
    except ValueError as exc:
        raise AssetProblem(iid, xml.get("manifest", "safe-manifest"), str(exc)) from None
    pols = {}
    for band in S1_BANDS:
        pol = band.lower()
        if pol not in ann:
            raise AssetProblem(iid, f"annotation-{pol}", "not listed in the manifest")
        meas = href(assets[band])
        pols[band] = {
            "annotation": fetch(ann[pol]),
            "calibration": fetch(href(xml.get("calibration",
                                              "schema-calibration-{pol}").format(pol=pol))),
            "noise": fetch(href(xml.get("noise", "schema-noise-{pol}").format(pol=pol))),
            "read_dn": _dn_reader(reader, iid, assets[band], meas)}
    return {"product_id": iid, "platform": str(p.get("platform", "")),
            "orbit_pass": str(p.get("sat:orbit_state", "")).upper(),
            "relative_orbit": p.get("sat:relative_orbit"),
            "start": _time(p.get("start_datetime") or p.get("datetime")),
            "stop": _time(p.get("end_datetime") or p.get("datetime")), "polarisations": pols}


def _dn_reader(reader: AssetReader, item: str, key: str, href: str
               ) -> Callable[[slice, slice], np.ndarray]:
    """``read_dn(rows, cols)``: a window of the measurement COG (radar geometry, no CRS),
    signed and opened when called."""
    import rasterio
    from rasterio.windows import Window

    from . import access
    from .reader import classify

    def read_dn(rows: slice, cols: slice) -> np.ndarray:
        path = reader.open_path(href)
        try:
            with access.host_slot(access.host_of(href), reader.limit), \
                    reader.env(), rasterio.open(path) as src:
                return src.read(1, window=Window(cols.start, rows.start,
                                                 cols.stop - cols.start,
                                                 rows.stop - rows.start))
        except rasterio.errors.RasterioError as exc:
            raise classify(item, key, str(exc)) from None

    return read_dn


def sigma0_on_grid(inputs: Mapping[str, Any], grid: Grid, dem: np.ndarray
                   ) -> tuple[np.ndarray, dict[str, Any]]:
    """The one call into the Sentinel-1 GRD chain: ``inputs`` (:func:`grd_inputs`) as a
    ``GrdProduct``, calibrated, noise-removed and terrain-corrected onto ``grid`` with the
    ``dem`` heights ((H, W) float32 metres above the geoid on ``grid``).

    Returns:
        (2, H, W) float32 sigma0 dB (NaN nodata) and the chain's metadata.

    Raises:
        SourceUnavailable: the GRD chain is not part of this build.
    """
    if not grd_chain_available():
        raise SourceUnavailable("backend.stac.s1: the Sentinel-1 GRD chain "
                                f"({GRD_CHAIN}) is not part of this build; use an s1 source "
                                "with product: sigma0, or a build with the chain")
    chain = importlib.import_module(GRD_CHAIN)
    product_mod = importlib.import_module(GRD_PRODUCT)
    pols = inputs["polarisations"]
    product = product_mod.GrdProduct(  # the interface agreed with the sar branch
        product_id=inputs["product_id"], platform=inputs["platform"],
        orbit_pass=inputs["orbit_pass"], relative_orbit=inputs["relative_orbit"],
        start=inputs["start"], stop=inputs["stop"],
        **{pol.lower(): product_mod.Polarisation(**pols[pol]) for pol in pols})
    return chain.sigma0_db_on_grid(product, grid, dem)


def sigma0_assets(item: Mapping[str, Any], assets: Mapping[str, str]) -> list[BandAsset]:
    """The VV and VH assets of an ``s1-sigma0`` item (bilinear onto the grid).

    Raises:
        AssetProblem: a polarisation's asset is missing.
    """
    out = []
    for band in S1_BANDS:
        key = assets.get(band)
        a = item.get("assets", {}).get(key or "")
        if not a:
            raise AssetProblem(str(item["id"]), key or band, "missing from the item")
        out.append(BandAsset(str(item["id"]), band, key, str(a["href"]), "bilinear"))
    return out


def newest_on_top(layers: list[tuple[Mapping[str, Any], np.ndarray]], grid: Grid
                  ) -> tuple[np.ndarray, list[Mapping[str, Any]]]:
    """Sigma0 layers (item, (2, H, W) float32 dB) combined newest on top: each pixel from
    the newest acquisition with data in both bands. Returns the (2, H, W) float32 result
    (NaN nodata) and the items that contributed, oldest first."""
    out = np.full((S1.count, *grid.shape), np.nan, np.float32)
    used = []
    for item, arr in sorted(layers, key=lambda t: _time(
            t[0].get("properties", {}).get("datetime")
            or t[0].get("properties", {}).get("start_datetime"))):
        ok = ~np.any(np.isnan(arr), axis=0)
        if ok.any():
            out[:, ok] = arr[:, ok]
            used.append(item)
    return out, used


def fetch_bytes(session: Any, href: str, timeout_s: float) -> bytes:
    """GET ``href`` (an XML asset); errors as :class:`AssetProblem` (404) or
    :class:`SourceUnavailable`."""
    import requests

    try:
        r = session.get(href, timeout=timeout_s)
    except requests.exceptions.RequestException as exc:
        raise SourceUnavailable(f"{strip_url(href)}: {type(exc).__name__}: "
                                f"{redact(str(exc))[:160]}") from None
    if r.status_code == 404:
        raise AssetProblem(strip_url(href), "xml", "missing (HTTP 404)")
    if r.status_code >= 400:
        raise SourceUnavailable(f"{strip_url(href)}: HTTP {r.status_code} after retries")
    return r.content


__all__ = ["annotation_hrefs", "describe", "grd_inputs", "newest_on_top", "read_stack",
           "sigma0_assets", "sigma0_on_grid"]
