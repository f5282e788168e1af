"""``manifest.safe`` of a Sentinel-1 product: the product's facts (platform, pass, relative
orbit, times, mode, polarisations, processor version) and, per polarisation, where its product
annotation, calibration, noise and measurement files are.

The product annotation must be found here: Planetary Computer's ``sentinel-1-grd`` items have
``schema-product-{pol}`` assets that point to the RFI annotation, not to the product annotation
(recorded item: microsoft/planetary-computer-tasks, MIT,
``datasets/sentinel-1-grd/test-data/sentinel-1-grd-item-raw.json``). Planetary Computer also
renames the files of the SAFE (``annotation/calibration/calibration-iw-vv.xml``,
``measurement/iw-vv.tiff``): :func:`planetary_computer_href` maps a manifest href to that
layout (``{dirname}/{prefix}{swath}-{polarisation}{ext}``, the pattern ``sarsen`` 0.9.6 uses
for the same archive, Apache-2.0).
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone

from ..raster.io import InputError
from . import xmltext as X

NS = {
    "xfdu": "urn:ccsds:schema:xfdu:1",
    "safe": "http://www.esa.int/safe/sentinel-1.0",
    "s1": "http://www.esa.int/safe/sentinel-1.0/sentinel-1",
    "s1sarl1": "http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar/level-1",
}
#: repID of each file kind in the manifest's data objects.
REP_IDS = {
    "annotation": "s1Level1ProductSchema",
    "calibration": "s1Level1CalibrationSchema",
    "noise": "s1Level1NoiseSchema",
    "rfi": "s1Level1RfiSchema",
    "measurement": "s1Level1MeasurementSchema",
}
# s1b-iw-grd-vv-20211223t051122-20211223t051147-030148-039993-001.xml, with an optional
# "calibration-", "noise-" or "rfi-" prefix
_NAME = re.compile(r"^(?P<prefix>[a-z]+-)?s1[a-d]-(?P<swath>[a-z0-9]+)-(?P<type>[a-z]+)-"
                   r"(?P<pol>[a-z]{2})-.*(?P<ext>\.[a-z]+)$")


@dataclass(frozen=True)
class ManifestInfo:
    """A product's facts from its manifest.

    Attributes:
        platform: ``SENTINEL-1A`` ... (family name and number).
        mode: ``IW``, ``EW``, ``SM``, ``WV``.
        product_type: ``GRD``, ``SLC``, ...
        orbit_pass: ``ASCENDING`` or ``DESCENDING``.
        relative_orbit: relative orbit number at the start.
        absolute_orbit: absolute orbit number at the start.
        start, stop: sensing times, timezone-aware UTC.
        polarisations: e.g. ``("VV", "VH")``.
        ipf_version: the Instrument Processing Facility version, e.g. ``"003.40"``.
        files: ``{pol: {kind: href}}`` with kinds of :data:`REP_IDS`, hrefs relative to the
            SAFE folder as the manifest writes them (``./annotation/...``).
    """

    platform: str
    mode: str
    product_type: str
    orbit_pass: str
    relative_orbit: int
    absolute_orbit: int
    start: datetime
    stop: datetime
    polarisations: tuple[str, ...]
    ipf_version: str
    files: dict[str, dict[str, str]]

    @property
    def ipf(self) -> float:
        """The IPF version as a number (``"003.40"`` -> 3.4)."""
        return float(self.ipf_version)


def parse_manifest(xml: bytes, what: str = "manifest.safe") -> ManifestInfo:
    """Parse ``manifest.safe``.

    Raises:
        InputError: not a Sentinel-1 manifest, or a fact is missing.
    """
    root = X.parse(xml, what)
    if not root.tag.endswith("XFDU"):
        raise InputError(f"{what}: <{root.tag}> is not a SAFE manifest (XFDU)")

    def find(path: str) -> str:
        el = root.find(path, NS)
        if el is None or not (el.text or "").strip():
            raise InputError(f"{what}: {path.split('/')[-1]} is missing from the manifest")
        return el.text.strip()

    meta = ".//metadataObject[@ID='{}']/metadataWrap/xmlData"
    family = find(meta.format("platform") + "/safe:platform/safe:familyName")
    number = find(meta.format("platform") + "/safe:platform/safe:number")
    mode = find(meta.format("platform") + "/safe:platform/safe:instrument/safe:extension/"
                "s1sarl1:instrumentMode/s1sarl1:mode")
    orbit = meta.format("measurementOrbitReference") + "/safe:orbitReference"
    general = meta.format("generalProductInformation") + "/s1sarl1:standAloneProductInformation"
    period = meta.format("acquisitionPeriod") + "/safe:acquisitionPeriod"
    software = root.find(".//metadataObject[@ID='processing']//safe:software", NS)
    if software is None or not software.get("version"):
        raise InputError(f"{what}: the processor (IPF) version is missing from the manifest")
    pols = tuple(e.text.strip() for e in root.findall(
        general + "/s1sarl1:transmitterReceiverPolarisation", NS) if e.text)
    return ManifestInfo(
        platform=f"{family}{number}",
        mode=mode,
        product_type=find(general + "/s1sarl1:productType"),
        orbit_pass=find(orbit + "/safe:extension/s1:orbitProperties/s1:pass").upper(),
        relative_orbit=int(find(orbit + "/safe:relativeOrbitNumber[@type='start']")),
        absolute_orbit=int(find(orbit + "/safe:orbitNumber[@type='start']")),
        start=_utc(find(period + "/safe:startTime"), what),
        stop=_utc(find(period + "/safe:stopTime"), what),
        polarisations=pols,
        ipf_version=software.get("version", ""),
        files=_files(root, what),
    )


def _utc(raw: str, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(raw.rstrip("Z"))
    except ValueError:
        raise InputError(f"{what}: {raw!r} is not a UTC time") from None
    return t.replace(tzinfo=timezone.utc)


def _files(root: ET.Element, what: str) -> dict[str, dict[str, str]]:
    kinds = {rep: kind for kind, rep in REP_IDS.items()}
    out: dict[str, dict[str, str]] = {}
    for obj in root.findall(".//dataObjectSection/dataObject"):
        kind = kinds.get(obj.get("repID", ""))
        loc = obj.find("byteStream/fileLocation")
        if kind is None or loc is None or not loc.get("href"):
            continue
        href = loc.get("href", "")
        m = _NAME.match(posixpath.basename(href))
        if m is None:
            raise InputError(f"{what}: file name {href!r} does not follow the SAFE naming")
        out.setdefault(m.group("pol").upper(), {})[kind] = href
    if not out:
        raise InputError(f"{what}: the manifest lists no annotation or measurement file")
    return out


def planetary_computer_href(href: str) -> str:
    """A manifest href in Planetary Computer's renamed layout, relative to the product folder.

    ``./annotation/s1b-iw-grd-vv-2021...-001.xml`` -> ``annotation/iw-vv.xml``;
    ``./annotation/calibration/noise-s1b-iw-grd-vv-...xml`` ->
    ``annotation/calibration/noise-iw-vv.xml``; ``./measurement/s1b-iw-grd-vh-...tiff`` ->
    ``measurement/iw-vh.tiff``.

    Raises:
        InputError: the name does not follow the SAFE naming.
    """
    path = posixpath.normpath(href.removeprefix("./"))
    m = _NAME.match(posixpath.basename(path))
    if m is None:
        raise InputError(f"{href!r} does not follow the SAFE naming")
    name = f"{m.group('prefix') or ''}{m.group('swath')}-{m.group('pol')}{m.group('ext')}"
    return posixpath.join(posixpath.dirname(path), name)
