"""Sentinel-1 from STAC: raw GRD items through the GRD chain (:mod:`sen12ms_build.sar`) onto
the scene grid, newest on top.

``s1-grd`` items (Planetary Computer ``sentinel-1-grd``; CDSE ``sentinel-1-grd``) hold the
VV/VH measurement COGs in radar geometry (GCPs, no CRS; the items' ``proj:*`` fields are
wrong for them, titiler-openeo#338, stackstac#181, and nothing here reads them) and the
SAFE's XML. Per item:

1. :func:`xml_hrefs`: the SAFE ``manifest.safe`` (the product's facts and where each file
   is), then per polarisation the product annotation, calibration and noise XML. The product
   annotation is always found through the manifest: Planetary Computer's
   ``schema-product-{pol}`` assets point at the RFI annotation (recorded item,
   ``tests/fixtures/stac/pc_sentinel-1-grd_item.json``). Planetary Computer renames the
   SAFE's files (``annotation/iw-vv.xml``; the profile's ``xml.layout:
   planetary-computer``, :func:`sen12ms_build.sar.manifest.planetary_computer_href`); a
   plain SAFE (CDSE's ``eodata``; ``xml.layout: safe``) keeps the manifest's names, and its
   manifest is the ``manifest.safe`` beside the measurement's folder when the item has no
   manifest asset;
2. :func:`grd_inputs`: the XML bytes and a ``read_dn(rows, cols)`` per polarisation over the
   measurement COG (:meth:`~.reader.AssetReader.read_window`: signed, a host slot, only the
   blocks of the window);
3. :func:`sigma0_on_grid`: ``GrdProduct.from_xml`` (:mod:`sen12ms_build.sar.product`) and
   :func:`~sen12ms_build.sar.chain.sigma0_db_on_grid` with Copernicus DEM heights on the
   grid (above the geoid: ``dem_is_ellipsoidal=False``). The chain reads only the radar
   window the grid needs.

Which items and in which order: :func:`sen12ms_build.sar.selection.select_grd` (IW, GRD, VV
and VH, the period, the ROI; oldest first), combined by
:func:`~sen12ms_build.sar.selection.paint_newest_on_top`: the Earth Engine path's rule
(:data:`~sen12ms_build.products.S1_COMPOSITE`).
"""

from __future__ import annotations

import datetime as dt
import posixpath
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ...geo import Grid
from ...products import S1_BANDS
from ...raster.io import InputError
from ...sar import chain as sar_chain
from ...sar.manifest import parse_manifest, planetary_computer_href
from ...sar.product import GrdProduct
from ...sar.selection import GrdCandidate, candidate_from_stac
from .credentials import redact, strip_url
from . import access
from .profiles import XML_LAYOUTS, Product, Profile
from .reader import AssetProblem, AssetReader, BandAsset, SourceUnavailable

#: How a product's files are named beside its manifest (the profile's ``xml.layout``).
LAYOUTS = XML_LAYOUTS
#: The XML asset keys of Planetary Computer's items (the default of ``xml``).
PC_XML = {"manifest": "safe-manifest", "calibration": "schema-calibration-{pol}",
          "noise": "schema-noise-{pol}", "layout": "planetary-computer"}


def processing_tag(meta: Mapping[str, Any]) -> str:
    """The chain's name and version as recorded in patch tags (``sen12ms-build sar 1``)
    from :func:`~sen12ms_build.sar.chain.sigma0_db_on_grid`'s metadata."""
    return f"{meta['processing_name']} {meta['processing_version']}"


def candidate(item: Mapping[str, Any]) -> GrdCandidate:
    """The selection's view of an item (:func:`~sen12ms_build.sar.selection.candidate_from_stac`).

    Raises:
        AssetProblem: the item lacks a time, mode, product type or polarisations.
    """
    try:
        return candidate_from_stac(item)
    except (KeyError, TypeError, ValueError) as exc:
        raise AssetProblem(str(item.get("id", "?")), "properties",
                           f"not a Sentinel-1 GRD item ({type(exc).__name__}: {exc}; needs "
                           "sar:instrument_mode, sar:product_type, sar:polarizations and a "
                           "time)") from None


def _join(base_href: str, rel: str) -> str:
    """``rel`` (relative to a SAFE folder) against the folder of ``base_href`` (query string
    dropped: the reader signs what it opens)."""
    parts = urlsplit(base_href)
    folder = posixpath.dirname(parts.path)
    path = posixpath.normpath(posixpath.join(folder, rel.removeprefix("./")))
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def manifest_href(item: Mapping[str, Any], product: Product) -> str:
    """The href of the item's ``manifest.safe``: its manifest asset, else (a plain SAFE)
    the ``manifest.safe`` of the ``.SAFE`` folder holding the VV measurement.

    Raises:
        AssetProblem: neither is there.
    """
    iid, assets = str(item["id"]), item.get("assets", {})
    key = product.xml.get("manifest")
    if key and key in assets:
        return str(assets[key]["href"])
    vv = assets.get(product.assets.get("VV", ""), {}).get("href", "")
    head, sep, _ = str(vv).partition(".SAFE/")
    if layout_of(product) == "safe" and sep:
        return strip_url(head + ".SAFE/manifest.safe")
    raise AssetProblem(iid, key or "manifest", "missing from the item")


def layout_of(product: Product) -> str:
    """The product's file layout (:data:`LAYOUTS`), ``planetary-computer`` by default."""
    return str(product.xml.get("layout", "planetary-computer"))


def xml_hrefs(item: Mapping[str, Any], manifest: bytes, man_href: str, product: Product
              ) -> dict[str, dict[str, str]]:
    """Per polarisation (``VV``, ``VH``) the hrefs of its ``annotation`` (the product
    annotation, from the manifest), ``calibration`` and ``noise`` XML: the item's assets
    when the profile names them (``xml.calibration``, ``xml.noise``, ``{pol}`` the lower-case
    polarisation), else the manifest's entries, named in the profile's layout.

    Raises:
        AssetProblem: the manifest does not parse or lacks a polarisation's file.
    """
    iid, assets = str(item["id"]), item.get("assets", {})
    key = product.xml.get("manifest", "manifest")
    try:
        files = parse_manifest(manifest, f"{iid} manifest.safe").files
    except InputError as exc:
        raise AssetProblem(iid, key, str(exc).split(": ", 1)[-1]) from None
    rename = planetary_computer_href if layout_of(product) == "planetary-computer" \
        else (lambda h: h.removeprefix("./"))
    out: dict[str, dict[str, str]] = {}
    for pol in S1_BANDS:
        listed = files.get(pol, {})
        hrefs = {}
        for kind in ("annotation", "calibration", "noise"):
            asset = product.xml.get(kind, "").format(pol=pol.lower()) if kind != "annotation" \
                else ""
            if asset and asset in assets:
                hrefs[kind] = str(assets[asset]["href"])
            elif kind in listed:
                try:
                    hrefs[kind] = _join(man_href, rename(listed[kind]))
                except InputError as exc:
                    raise AssetProblem(iid, key, str(exc)) from None
            else:
                raise AssetProblem(iid, asset or key, f"no {pol} {kind} XML (neither an "
                                   "asset nor listed in the manifest)")
        out[pol] = hrefs
    return out


def grd_inputs(item: Mapping[str, Any], product: Product, fetch: Callable[[str], bytes],
               reader: AssetReader) -> dict[str, Any]:
    """What ``GrdProduct.from_xml`` (:mod:`sen12ms_build.sar.product`) takes, from one
    ``s1-grd`` item: ``manifest`` bytes, ``annotation``, ``calibration`` and
    ``noise`` (``{pol: bytes}``), ``read_dn`` (``{pol: reader}`` of uint16 DN windows of
    the measurement COG) and ``product_id`` (the item id).

    Args:
        product: the profile's ``s1-grd`` product (asset keys, ``xml`` keys and layout).
        fetch: href -> bytes (signed and retried by the caller).
        reader: the product's asset reader (measurement windows).

    Raises:
        AssetProblem: an asset is missing, or the manifest names no product annotation.
    """
    iid, assets = str(item["id"]), item.get("assets", {})
    man_href = manifest_href(item, product)
    manifest = fetch(man_href)
    docs: dict[str, dict[str, bytes]] = {"annotation": {}, "calibration": {}, "noise": {}}
    read_dn = {}
    for pol, hrefs in xml_hrefs(item, manifest, man_href, product).items():
        key = product.assets.get(pol, pol.lower())
        if key not in assets:
            raise AssetProblem(iid, key, "missing from the item")
        for kind, href in hrefs.items():
            docs[kind][pol] = fetch(href)
        read_dn[pol] = _dn_reader(reader, BandAsset(iid, pol, key, str(assets[key]["href"]),
                                                    "nearest"))
    return {"manifest": manifest, **docs, "read_dn": read_dn, "product_id": iid}


def _dn_reader(reader: AssetReader, asset: BandAsset
               ) -> Callable[[slice, slice], np.ndarray]:
    def read_dn(rows: slice, cols: slice) -> np.ndarray:
        return reader.read_window(asset, rows, cols)

    return read_dn


def sigma0_on_grid(inputs: Mapping[str, Any], grid: Grid, dem: np.ndarray
                   ) -> tuple[np.ndarray, dict[str, Any]]:
    """The one call into the GRD chain: ``inputs`` (:func:`grd_inputs`) as a
    :class:`~sen12ms_build.sar.product.GrdProduct`, calibrated, noise-removed and
    terrain-corrected onto ``grid`` with the ``dem`` heights.

    Args:
        grid: the scene's UTM 10 m grid.
        dem: (H, W) float32 heights in metres above the geoid on ``grid`` (Copernicus DEM;
            the chain adds the EGM96 undulation), NaN nodata.
    Returns:
        (2, H, W) float32 VV, VH sigma0 dB (NaN nodata) and the chain's metadata (product id,
        platform, orbit pass, relative orbit, times, processing name and version, window).

    Raises:
        AssetProblem: the product's XML does not parse, or it is not an IW GRD with VV and
            VH (the chain's :class:`~sen12ms_build.raster.io.InputError`).
        SourceUnavailable: the measurement could not be read now.
    """
    iid = str(inputs["product_id"])
    try:
        product = GrdProduct.from_xml(inputs["manifest"], inputs["annotation"],
                                      inputs["calibration"], inputs["noise"],
                                      inputs["read_dn"], product_id=iid)
        return sar_chain.sigma0_db_on_grid(product, grid, dem, dem_is_ellipsoidal=False)
    except InputError as exc:
        raise AssetProblem(iid, "xml", redact(str(exc)).removeprefix(f"{iid}: ")) from None


def acquisition(meta: Mapping[str, Any], item: Mapping[str, Any]) -> dict[str, Any]:
    """The scene record's view of one product that contributed pixels: ``product_id``,
    ``file`` (the item id), ``time`` (sensing start, ISO UTC), ``orbit_pass``,
    ``relative_orbit`` (from the product's manifest, not the item) and ``processing`` (the
    chain's name and version, :func:`processing_tag`)."""
    return {"product_id": str(meta["product_id"]), "file": str(item["id"]),
            "time": str(meta["start"]), "orbit_pass": str(meta["orbit_pass"]).upper(),
            "relative_orbit": meta.get("relative_orbit"), "platform": meta.get("platform"),
            "processing": processing_tag(meta)}


def fetch_bytes(session: Any, href: str, timeout_s: float) -> bytes:
    """GET ``href`` (an XML asset); errors as :class:`AssetProblem` (404) or
    :class:`SourceUnavailable` (unreachable, or failing after the session's retries; a 403
    says so, for the caller to sign again).

    Raises:
        AssetProblem, SourceUnavailable: see above.
    """
    import requests

    try:
        r = session.get(href, timeout=timeout_s)
    except requests.exceptions.RequestException as exc:
        raise SourceUnavailable(f"{strip_url(href)}: {type(exc).__name__}: "
                                f"{redact(str(exc))[:160]}") from None
    if r.status_code == 404:
        raise AssetProblem(strip_url(href), "xml", "missing (HTTP 404)")
    if r.status_code in (401, 403):
        raise SourceUnavailable(f"{strip_url(href)}: access refused (HTTP {r.status_code}); "
                                "check the profile's credentials")
    if r.status_code >= 400:
        raise SourceUnavailable(f"{strip_url(href)}: HTTP {r.status_code} after retries")
    return r.content


def s3_get(profile: Profile, kind: str, href: str, timeout_s: float = 60.0,
           retries: int = 5) -> bytes:
    """The whole object at ``s3://bucket/key`` (a small file: the SAFE's XML) with the
    product's S3 settings (endpoint, https, addressing style, region, requester pays) and
    keys (``s3-keys`` auth, from the environment; else unsigned), through ``boto3``
    (retries in its ``standard`` mode, which backs off on 429/5xx and timeouts).

    Raises:
        AssetProblem: no such key; SourceUnavailable: unreachable, refused or failing.
    """
    import boto3
    import botocore
    from botocore.config import Config

    s3 = profile.s3_for(kind)
    keys = access.s3_keys(profile, kind)
    config = Config(connect_timeout=min(timeout_s, 10.0), read_timeout=timeout_s,
                    retries={"max_attempts": retries + 1, "mode": "standard"},
                    s3={"addressing_style": "virtual" if s3.virtual_hosting else "path"},
                    signature_version=None if keys else botocore.UNSIGNED)
    endpoint = None
    if s3.endpoint:
        endpoint = f"{'https' if s3.https else 'http'}://{s3.endpoint}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name=s3.region or "us-east-1",
                          aws_access_key_id=keys.get("AWS_ACCESS_KEY_ID"),
                          aws_secret_access_key=keys.get("AWS_SECRET_ACCESS_KEY"),
                          config=config)
    bucket, _, key = href[len("s3://"):].partition("/")
    extra = {"RequestPayer": "requester"} if s3.requester_pays else {}
    try:
        return client.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "404") or status == 404:
            raise AssetProblem(href, "xml", "missing (HTTP 404)") from None
        if status in (401, 403) or code in ("AccessDenied", "SignatureDoesNotMatch",
                                            "InvalidAccessKeyId"):
            raise SourceUnavailable(f"{href}: access refused (HTTP {status}, {code}); check "
                                    "the profile's credentials") from None
        raise SourceUnavailable(f"{href}: HTTP {status} ({code}) after retries; finished work "
                                "is kept, run the same command again to resume") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise SourceUnavailable(f"{href}: {type(exc).__name__}: {redact(str(exc))}"
                                [:200]) from None


def painting_order(items: Sequence[Mapping[str, Any]], start: dt.date, end: dt.date,
                       ring: Sequence[tuple[float, float]] | None
                       ) -> tuple[list[Mapping[str, Any]], list[str], list[str]]:
    """The items a scene uses in painting order (oldest first: the newest ends on top), by
    :func:`~sen12ms_build.sar.selection.select_grd`; plus the problems of items that are no
    GRD items, and the ids the selection left out (another mode, one polarisation, outside
    the period or the ROI)."""
    from ...sar.selection import select_grd

    by_id, cands, problems = {}, [], []
    for item in items:
        try:
            c = candidate(item)
        except AssetProblem as exc:
            problems.append(str(exc))
            continue
        by_id[c.product_id] = item
        cands.append(c)
    chosen = select_grd(cands, start, end, ring)
    keep = {c.product_id for c in chosen}
    left = [c.product_id for c in cands if c.product_id not in keep]
    return [by_id[c.product_id] for c in chosen], problems, left


__all__ = ["LAYOUTS", "PC_XML", "acquisition", "candidate", "fetch_bytes", "grd_inputs",
           "layout_of", "manifest_href", "painting_order", "processing_tag", "s3_get",
           "sigma0_on_grid", "xml_hrefs"]
