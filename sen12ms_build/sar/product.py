"""One Sentinel-1 GRD product as the chain reads it: :class:`GrdProduct`.

The chain needs, per polarisation, three XML documents (product annotation, calibration,
noise) and a reader of DN windows of the measurement raster in radar geometry (row = line,
column = pixel; no CRS, the geometry comes from the annotation). Two constructors:

* :meth:`GrdProduct.from_safe`: a local SAFE folder (``manifest.safe`` names the files);
* :meth:`GrdProduct.from_xml`: the manifest's and the XML documents' bytes and one reader per
  polarisation: what a STAC backend has. For Planetary Computer's ``sentinel-1-grd`` items:
  ``safe-manifest`` gives the manifest; each polarisation's product annotation is found
  through it (:attr:`ManifestInfo.files`, renamed with
  :func:`~.manifest.planetary_computer_href`; the items' ``schema-product-*`` assets are RFI
  annotations); ``schema-calibration-*`` and ``schema-noise-*`` are the other two; the
  ``vv``/``vh`` COGs (GCPs, no CRS) are read by window with :func:`window_reader`. The
  items' ``proj:*`` fields are wrong for these rasters (titiler-openeo#338, stackstac#181)
  and are never used: nothing here needs them.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from ..raster.io import InputError
from .annotation import ProductAnnotation, parse_annotation
from .calibration import Calibration, parse_calibration
from .manifest import parse_manifest
from .noise import Noise, parse_noise

#: DN window reader: (rows, cols) slices of the measurement raster -> uint16 (h, w).
DnReader = Callable[[slice, slice], np.ndarray]
#: Polarisations the chain exports (the bands of S1 patches).
POLARISATIONS = ("VV", "VH")


@dataclass(frozen=True)
class GrdPolarisation:
    """One polarisation of a GRD product: its XML bytes and DN window reader.

    ``annotation``, ``calibration`` and ``noise`` are parsed on first use (cached).
    """

    annotation_xml: bytes
    calibration_xml: bytes
    noise_xml: bytes
    read_dn: DnReader = field(repr=False)
    name: str = ""

    @functools.cached_property
    def annotation(self) -> ProductAnnotation:
        return parse_annotation(self.annotation_xml, f"{self.name} product annotation")

    @functools.cached_property
    def calibration(self) -> Calibration:
        return parse_calibration(self.calibration_xml, what=f"{self.name} calibration")

    @functools.cached_property
    def noise(self) -> Noise:
        return parse_noise(self.noise_xml, what=f"{self.name} noise")


@dataclass(frozen=True)
class GrdProduct:
    """A Sentinel-1 GRD product.

    Attributes:
        product_id: the product name (``S1B_IW_GRDH_1SDV_..._5371``).
        platform: ``SENTINEL-1A`` ...
        orbit_pass: ``ASCENDING`` or ``DESCENDING``.
        relative_orbit: relative orbit number.
        start, stop: sensing times, timezone-aware UTC.
        polarisations: ``{"VV": GrdPolarisation, "VH": ...}``.
        mode: ``IW`` ...
        product_type: ``GRD``.
        ipf_version: processor version string (``"003.40"``).
    """

    product_id: str
    platform: str
    orbit_pass: str
    relative_orbit: int
    start: datetime
    stop: datetime
    polarisations: Mapping[str, GrdPolarisation]
    mode: str = "IW"
    product_type: str = "GRD"
    ipf_version: str = ""

    @property
    def ipf(self) -> float:
        """The processor version as a number (0.0 when unknown)."""
        try:
            return float(self.ipf_version)
        except ValueError:
            return 0.0

    def pol(self, name: str) -> GrdPolarisation:
        """One polarisation; raises :class:`InputError` if the product lacks it."""
        try:
            return self.polarisations[name]
        except KeyError:
            raise InputError(f"{self.product_id}: no {name} polarisation (has "
                             f"{', '.join(self.polarisations) or 'none'}); the chain needs "
                             f"{' and '.join(POLARISATIONS)}") from None

    @classmethod
    def from_xml(cls, manifest: bytes, annotation: Mapping[str, bytes],
                 calibration: Mapping[str, bytes], noise: Mapping[str, bytes],
                 read_dn: Mapping[str, DnReader], *, product_id: str) -> GrdProduct:
        """A product from its XML documents' bytes and one DN reader per polarisation.

        Args:
            manifest: ``manifest.safe`` bytes (product facts).
            annotation, calibration, noise: ``{pol: bytes}`` for each polarisation to use
                (the product annotation, not the RFI annotation).
            read_dn: ``{pol: reader}`` (:data:`DnReader`, e.g. :func:`window_reader`).
            product_id: the product name (the STAC item id).
        Raises:
            InputError: a polarisation misses a document, or the manifest is not a GRD's.
        """
        info = parse_manifest(manifest, f"{product_id} manifest.safe")
        if info.product_type != "GRD":
            raise InputError(f"{product_id}: product type {info.product_type}, the chain "
                             "reads GRD only")
        pols = {}
        for pol, reader in read_dn.items():
            missing = [k for k, m in (("annotation", annotation), ("calibration", calibration),
                                      ("noise", noise)) if pol not in m]
            if missing:
                raise InputError(f"{product_id}: {pol} has no {', '.join(missing)} XML")
            pols[pol] = GrdPolarisation(annotation[pol], calibration[pol], noise[pol], reader,
                                        f"{product_id} {pol}")
        return cls(product_id=product_id, platform=info.platform, orbit_pass=info.orbit_pass,
                   relative_orbit=info.relative_orbit, start=info.start, stop=info.stop,
                   polarisations=pols, mode=info.mode, product_type=info.product_type,
                   ipf_version=info.ipf_version)

    @classmethod
    def from_safe(cls, path: Path | str) -> GrdProduct:
        """A product from a local SAFE folder (``manifest.safe`` names its files; the XML
        may also sit there compressed as ``<name>.xz``).

        Raises:
            InputError: no manifest, or a file it names is missing.
        """
        root = Path(path)
        manifest = root / "manifest.safe"
        if not manifest.is_file():
            raise InputError(f"{root}: no manifest.safe; give the path of a .SAFE folder")
        info = parse_manifest(manifest.read_bytes(), str(manifest))
        docs: dict[str, dict[str, bytes]] = {"annotation": {}, "calibration": {}, "noise": {}}
        readers = {}
        for pol, files in info.files.items():
            if not {"annotation", "calibration", "noise", "measurement"} <= files.keys():
                raise InputError(f"{manifest}: {pol} lacks an annotation, calibration, noise "
                                 "or measurement entry")
            for kind in docs:
                docs[kind][pol] = _read_xml(root / files[kind])
            readers[pol] = window_reader(root / files["measurement"])
        return cls.from_xml(manifest.read_bytes(), docs["annotation"], docs["calibration"],
                            docs["noise"], readers, product_id=root.name.removesuffix(".SAFE"))


def _read_xml(path: Path) -> bytes:
    if path.is_file():
        return path.read_bytes()
    packed = path.with_name(path.name + ".xz")
    if packed.is_file():
        import lzma

        return lzma.decompress(packed.read_bytes())
    raise InputError(f"{path}: missing (named in manifest.safe); is the SAFE complete?")


def read_radar_window(path: Path | str, rows: slice, cols: slice, band: int = 1
                      ) -> np.ndarray:
    """Rows and columns of one band of a raster in radar geometry (GCPs, no CRS: no warning
    for the missing geotransform), (h, w) of the file's dtype; only the window's blocks are
    read.

    Raises:
        IndexError: the window is outside the raster (the message says both sizes).
        rasterio.errors.RasterioIOError: the file cannot be opened or read.
    """
    with warnings.catch_warnings():  # radar geometry: no geotransform, by design
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        src = rasterio.open(path)
    with src:
        if rows.start < 0 or cols.start < 0 or rows.stop > src.height \
                or cols.stop > src.width:
            raise IndexError(f"window rows {rows.start}:{rows.stop}, cols {cols.start}:"
                             f"{cols.stop} outside its {src.height} x {src.width} pixels")
        return src.read(band, window=Window(cols.start, rows.start, cols.stop - cols.start,
                                            rows.stop - rows.start))


def window_reader(path: Path | str, band: int = 1) -> DnReader:
    """A :data:`DnReader` of a measurement raster (a GRD TIFF or COG; GCPs and no CRS are
    fine: only rows and columns are used). The file is opened per call, so the reader holds
    no handle and works across threads.

    Raises (when called):
        InputError: the file cannot be read, or the window is outside it.
    """

    def read(rows: slice, cols: slice) -> np.ndarray:
        try:
            return read_radar_window(path, rows, cols, band)
        except IndexError as exc:
            raise InputError(f"{path}: {exc}") from None
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"{path}: cannot read the measurement ({exc})") from None

    return read
