"""SAFE XML parsing of the GRD chain (sen12ms_build.sar: manifest, annotation, calibration,
noise) on a real product's metadata, checked against what the product's own name says,
against xarray-sentinel's reading of the same files, and against Planetary Computer's
recorded item layout."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import numpy as np
import pytest

from sar_truth import PC_ITEM, SAFE_NAME, geolocation, manifest, xml
from sen12ms_build.raster.io import InputError
from sen12ms_build.sar.annotation import parse_annotation
from sen12ms_build.sar.calibration import parse_calibration
from sen12ms_build.sar.manifest import parse_manifest, planetary_computer_href
from sen12ms_build.sar.noise import parse_noise

pytestmark = pytest.mark.xdist_group("sar")


def test_manifest_facts_match_the_product_name():
    # S1B_IW_GRDH_1SDV_<start>_<stop>_<absolute orbit>_<datatake>_<id>
    _, mode, _, pols, start, stop, orbit, _, _ = SAFE_NAME.removesuffix(".SAFE").split("_")
    info = parse_manifest(manifest())
    assert info.platform == "SENTINEL-1B" and info.mode == mode == "IW"
    assert info.product_type == "GRD"
    assert info.polarisations == ("VV", "VH") and pols == "1SDV"  # dual VV+VH
    assert info.absolute_orbit == int(orbit)
    # Sentinel-1B: relative orbit = (absolute - 27) mod 175 + 1 (ESA's orbit numbering)
    assert info.relative_orbit == (int(orbit) - 27) % 175 + 1
    assert info.start.strftime("%Y%m%dT%H%M%S") == start
    assert info.stop.strftime("%Y%m%dT%H%M%S") == stop
    assert info.start.tzinfo == timezone.utc
    assert info.ipf == pytest.approx(3.4)
    # descending: morning pass over Italy (05:11 UTC, ~06:11 local solar time)
    assert info.orbit_pass == "DESCENDING"


def test_manifest_finds_each_polarisations_product_annotation():
    files = parse_manifest(manifest()).files
    assert set(files) == {"VV", "VH"}
    for pol, kinds in files.items():
        assert kinds["annotation"].startswith("./annotation/s1b-iw-grd-" + pol.lower())
        assert kinds["rfi"].startswith("./annotation/rfi/")
        assert kinds["measurement"].endswith(".tiff")
    # the document the manifest calls the product annotation parses as one
    ann = parse_annotation(xml("annotation"))
    assert ann.polarisation == "VV" and ann.product_type == "GRD"


def test_planetary_computer_layout_and_its_rfi_trap():
    item = json.loads(PC_ITEM.read_text())
    hrefs = {k: a["href"] for k, a in item["assets"].items()}
    base = hrefs["safe-manifest"].rsplit("/", 1)[0] + "/"
    # PC renames the SAFE's files; our mapping of manifest hrefs reproduces its names
    for pol in ("vv", "vh"):
        for kind, asset in (("calibration", f"schema-calibration-{pol}"),
                            ("noise", f"schema-noise-{pol}"), ("measurement", pol)):
            name = f"./annotation/calibration/{kind}-s1a-iw-grd-{pol}-20230628t210705-x-001.xml"
            if kind == "measurement":
                name = f"./measurement/s1a-iw-grd-{pol}-20230628t210705-x-001.tiff"
            assert base + planetary_computer_href(name) == hrefs[asset]
    # schema-product-vv is the RFI annotation: the product annotation is not an asset
    assert "/rfi/" in hrefs["schema-product-vv"]
    with pytest.raises(InputError, match="not a Sentinel-1 product annotation"):
        parse_annotation(xml("rfi"))
    assert planetary_computer_href("./annotation/s1a-iw-grd-vv-2023-x-001.xml") \
        == "annotation/iw-vv.xml"


def test_annotation_timing_and_grid_agree_with_xarray_sentinel():
    xs = pytest.importorskip("xarray_sentinel.sentinel1")
    ann = parse_annotation(xml("annotation"))
    assert (ann.lines, ann.samples) == (16705, 26102)
    gcp = xs.open_gcp_dataset(io.BytesIO(xml("annotation")))
    lat = gcp.latitude.values.ravel()
    assert np.allclose(np.sort(ann.geolocation.latitude), np.sort(lat), atol=1e-12)
    assert set(ann.geolocation.pixel) == set(gcp.pixel.values)
    orbit = xs.open_orbit_dataset(io.BytesIO(xml("annotation")))
    assert np.allclose(ann.orbit.position, orbit.position.values.T, atol=1e-6)
    assert np.allclose(ann.orbit.velocity, orbit.velocity.values.T, atol=1e-9)
    t = (orbit.azimuth_time.values - ann.epoch) / np.timedelta64(1, "s")
    assert np.allclose(ann.orbit.time, t, atol=1e-6)
    cc = xs.open_coordinate_conversion_dataset(io.BytesIO(xml("annotation")))
    assert np.allclose(ann.slant_to_ground.sr0, cc.sr0.values)
    assert np.allclose(ann.slant_to_ground.srgr, cc.srgrCoefficients.values)


def test_luts_agree_with_xarray_sentinel():
    xs = pytest.importorskip("xarray_sentinel.sentinel1")
    cal = xs.open_calibration_dataset(io.BytesIO(xml("calibration")))
    ours = parse_calibration(xml("calibration")).lut
    lines, pixels = cal.line.values, cal.pixel.values
    # at the LUT nodes, the bilinear interpolation is the LUT itself
    assert np.allclose(ours.at(lines, pixels), cal.sigmaNought.values, rtol=1e-6)
    noise_xs = xs.open_noise_range_dataset(io.BytesIO(xml("noise")))
    noise = parse_noise(xml("noise"))
    assert np.allclose(noise.range.at(noise_xs.line.values, noise_xs.pixel.values),
                       noise_xs.noiseRangeLut.values, rtol=1e-6)
    # xarray-sentinel keeps the first azimuth block only; ours keeps one per sub-swath
    az = xs.open_noise_azimuth_dataset(io.BytesIO(xml("noise")))
    first = noise.azimuth[0]
    assert np.array_equal(first.lines, az.line.values)
    assert np.allclose(first.values, az.noiseAzimuthLut.values)
    assert [b.swath for b in noise.azimuth] == ["IW1", "IW2", "IW3"]


def test_noise_blocks_match_the_annotations_sub_swaths():
    """Two documents, one truth: the noise file's azimuth blocks cover exactly the
    sub-swaths the product annotation's swathMerging bounds give."""
    ann = parse_annotation(xml("annotation"))
    blocks = parse_noise(xml("noise")).azimuth
    assert [(b.first_sample, b.last_sample, b.first_line, b.last_line) for b in blocks] \
        == [(s.first_sample, s.last_sample, s.first_line, s.last_line) for s in ann.swaths]
    assert blocks[0].first_sample == 0 and blocks[-1].last_sample == ann.samples - 1


def test_geolocation_grid_is_read_whole():
    g = geolocation()  # ElementTree, test side
    ann = parse_annotation(xml("annotation")).geolocation
    assert len(ann.line) == len(g["line"]) == 210
    assert np.array_equal(ann.line, g["line"]) and np.array_equal(ann.pixel, g["pixel"])
    assert np.array_equal(ann.height, g["height"])


@pytest.mark.parametrize("parse,kind", [(parse_annotation, "calibration"),
                                        (parse_calibration, "noise"),
                                        (parse_noise, "annotation")])
def test_wrong_document_is_one_clear_error(parse, kind):
    with pytest.raises(InputError) as exc:
        parse(xml(kind))
    assert "\n" not in str(exc.value)


def test_malformed_xml_is_input_error():
    with pytest.raises(InputError, match="not well-formed XML"):
        parse_calibration(b"<calibration><calibrationVectorList>")
    with pytest.raises(InputError, match="not a SAFE manifest"):
        parse_manifest(xml("noise"))
    broken = xml("annotation").replace(b"<numberOfLines>", b"<numberOfLinez>", 1)
    broken = broken.replace(b"</numberOfLines>", b"</numberOfLinez>", 1)
    with pytest.raises(InputError, match="numberOfLines"):
        parse_annotation(broken)


def test_start_is_utc_datetime():
    info = parse_manifest(manifest())
    assert info.start == datetime(2021, 12, 23, 5, 11, 22, 594441, tzinfo=timezone.utc)
