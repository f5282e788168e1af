"""backend.stac is checked when the config loads: profiles, products, credentials and the
scorer against the level, each a one-line ConfigError naming the key; and the S1 GRD asset
plumbing on a recorded Planetary Computer item."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from sen12ms_build.backends.stac import credentials, sentinel1
from sen12ms_build.backends.stac.options import parse
from sen12ms_build.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
FIX = Path(__file__).parent / "fixtures" / "stac"


@pytest.fixture()
def no_credentials(monkeypatch, tmp_path):
    for var in ("CDSE_S3_ACCESS_KEY", "CDSE_S3_SECRET_KEY", "EARTHDATA_TOKEN",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no.netrc"))


def _config(tmp_path: Path, stac: dict, **extra) -> Path:
    data = yaml.safe_load((REPO / "configs" / "sen12ms.yaml").read_text())
    data["backend"] = {"name": "stac", "stac": stac}
    data.update(extra)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


ANON = {"s2": {"profile": "planetary-computer", "level": "l2a"},
        "s1": {"profile": "planetary-computer"}}


@pytest.mark.parametrize("stac, key, words", [
    ({"s2": {"profile": "nope"}}, "backend.stac.s2.profile", "unknown profile 'nope'"),
    ({"s2": {"profile": "planetary-computer"}}, "backend.stac.s2.profile",
     "has no s2-l1c product"),
    ({"s2": {"profile": "earth-search", "level": "l3"}}, "backend.stac.s2.level",
     "unknown level"),
    ({"s2": {"profile": "cdse", "colour": 1}}, "backend.stac.s2.colour", "unknown key"),
    ({"profiles": {"m": {"extends": "nowhere"}}}, "backend.stac.profiles.m.extends",
     "unknown profile 'nowhere'"),
])
def test_bad_entries_name_their_key(tmp_path, no_credentials, stac, key, words):
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, stac))
    msg = str(err.value)
    assert f": {key}: " in msg and words in msg and "\n" not in msg


@pytest.mark.parametrize("stac, profile, variable", [
    ({}, "cdse", "CDSE_S3_ACCESS_KEY and CDSE_S3_SECRET_KEY"),
    (ANON, "earthdata", "EARTHDATA_TOKEN (or a urs.earthdata.nasa.gov entry in"),
    ({**ANON, "s2": {"profile": "earth-search", "level": "l1c"}, "lc": {"profile": "x"},
      "profiles": {"x": {"extends": "earthdata"}}}, "earth-search",
     "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
])
def test_a_missing_credential_is_one_line_naming_profile_and_variable(
        tmp_path, no_credentials, stac, profile, variable):
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, stac))
    msg = str(err.value)
    assert f"profile '{profile}' needs credentials" in msg and variable in msg
    assert "\n" not in msg


def test_netrc_stands_in_for_the_earthdata_token(tmp_path, monkeypatch, no_credentials):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine urs.earthdata.nasa.gov login someone password pw-9d8c7b\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    cfg = load_config(_config(tmp_path, {**ANON, "lc": {"profile": "earthdata"}}))
    assert cfg.s2_level == "l2a"
    assert "pw-9d8c7b" not in credentials.redact("login with pw-9d8c7b")


def test_scorers_against_backend_and_level(tmp_path, monkeypatch, no_credentials, caplog):
    monkeypatch.setenv("EARTHDATA_TOKEN", "tok-123456")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ak-123456")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sk-123456")
    with pytest.raises(ConfigError, match="backend.stac.s2.level: scorer 'scl' reads the "
                                          "Level-2A scene classification"):
        load_config(_config(tmp_path, {**ANON, "s2": {"profile": "earth-search",
                                                     "level": "l1c"}},
                            mosaic={"scorer": "scl"}))
    with pytest.raises(ConfigError, match="mosaic.scorer: scorer 'scl' runs on the stac "
                                          "backend only"):
        load_config(_config(tmp_path, ANON, mosaic={"scorer": "scl"},
                            backend={"name": "local", "archive": str(tmp_path)}))
    with pytest.raises(ConfigError, match="'cloudscoreplus' runs on the earthengine"):
        load_config(_config(tmp_path, ANON, mosaic={"scorer": "cloudscoreplus"}))
    opts = parse(ANON, "s2cloudless", check_credentials=False)
    assert any("off its training data" in w for w in opts.warnings)
    from sen12ms_build.backends.stac import StacBackend

    with caplog.at_level(logging.WARNING):
        StacBackend(opts, "s2cloudless")
    assert "off its training data" in caplog.text
    assert not parse(ANON, "scl", check_credentials=False).warnings


def test_a_mirror_is_a_config_entry(no_credentials):
    opts = parse({**ANON, "s2": {"profile": "mine", "level": "l2a"},
                  "profiles": {"mine": {"extends": "earth-search",
                                        "endpoint": "https://stac.example.org/v1"}}},
                 check_credentials=False)
    src = opts.sources["s2"]
    assert src.profile.endpoint == "https://stac.example.org/v1"
    assert src.product.collection == "sentinel-2-c1-l2a" and src.product.assets["SCL"] == "scl"
    raw = parse({"s2": {"endpoint": "https://stac.example.org/v1", "collection": "s2",
                        "format": "cog", "level": "l2a",
                        "assets": {"B2": "blue", "SCL": "scl"}}}, check_credentials=False)
    assert raw.sources["s2"].profile.name == "custom-s2"


def test_urls_lose_query_strings_and_user_info():
    url = "https://acc.blob.core.windows.net/c/x/B04.tif?st=2024&se=2025&sp=rl&sig=abc%3D"
    assert credentials.strip_url(url) == "https://acc.blob.core.windows.net/c/x/B04.tif"
    assert credentials.redact(f"failed: {url} and s3://k:s@b/key?x=1") == \
        "failed: https://acc.blob.core.windows.net/c/x/B04.tif and s3://b/key"


#: A real manifest.safe (S1B IW GRDH, the sarsen 0.9.6 sdist's; sen12ms_build/demo/data).
SAFE = next((REPO / "sen12ms_build" / "demo" / "data" / "s1b_grd").glob("*.SAFE"))
STEM = "s1b-iw-grd-{pol}-20211223t051122-20211223t051147-030148-039993-00{n}"


def _pc_item() -> dict:
    """The recorded Planetary Computer item, its local hrefs made blob hrefs."""
    item = json.loads((FIX / "pc_sentinel-1-grd_item.json").read_text())
    base = "https://sentinel1euwest.blob.core.windows.net/s1-grd/GRD/2023/6/28/IW/DV/P"
    for a in item["assets"].values():  # the recording's local paths -> blob hrefs
        a["href"] = base + a["href"].split("05EA4D_21D1", 1)[1]
    return item


def test_grd_inputs_find_the_product_annotation_through_the_manifest():
    """On the recorded Planetary Computer item, schema-product-{pol} points at the RFI
    annotation; the chain needs the product annotation, which the manifest lists, in PC's
    renamed layout (annotation/iw-vv.xml)."""
    item = _pc_item()
    assert "rfi" in item["assets"]["schema-product-vv"]["href"]
    manifest = (SAFE / "manifest.safe").read_bytes()
    fetched = []

    def fetch(href: str) -> bytes:
        fetched.append(href)
        return manifest if href.endswith("/manifest.safe") else href.encode()

    product = parse(None, check_credentials=False).sources["s1"].product
    inputs = sentinel1.grd_inputs(item, product, fetch, reader=None)  # type: ignore
    base = item["assets"]["safe-manifest"]["href"].rsplit("/", 1)[0]
    assert inputs["annotation"]["VV"] == f"{base}/annotation/iw-vv.xml".encode()
    assert inputs["annotation"]["VH"] == f"{base}/annotation/iw-vh.xml".encode()
    assert inputs["calibration"]["VH"] == \
        item["assets"]["schema-calibration-vh"]["href"].encode()
    assert inputs["noise"]["VV"] == item["assets"]["schema-noise-vv"]["href"].encode()
    assert not any("rfi" in h for h in fetched) and inputs["manifest"] == manifest
    assert set(inputs["read_dn"]) == {"VV", "VH"} and inputs["product_id"] == item["id"]


def test_a_plain_safe_is_read_through_its_own_manifest():
    """CDSE's COG SAFE (layout: safe): the item names the measurements only; the manifest
    is the folder's manifest.safe and every XML keeps the manifest's names."""
    root = "s3://eodata/Sentinel-1/SAR/IW_GRDH_1S-COG/2021/12/23/P_COG.SAFE"
    item = {"id": "P_COG", "properties": {}, "assets": {
        "vv": {"href": f"{root}/measurement/{STEM.format(pol='vv', n=1)}-cog.tiff"},
        "vh": {"href": f"{root}/measurement/{STEM.format(pol='vh', n=2)}-cog.tiff"}}}
    product = parse({"s1": {"profile": "cdse"}}, check_credentials=False).sources["s1"].product
    assert sentinel1.layout_of(product) == "safe"
    man = sentinel1.manifest_href(item, product)
    assert man == f"{root}/manifest.safe"
    hrefs = sentinel1.xml_hrefs(item, (SAFE / "manifest.safe").read_bytes(), man, product)
    vh = STEM.format(pol="vh", n=2)
    assert hrefs["VH"] == {"annotation": f"{root}/annotation/{vh}.xml",
                           "calibration": f"{root}/annotation/calibration/calibration-{vh}.xml",
                           "noise": f"{root}/annotation/calibration/noise-{vh}.xml"}
    del item["assets"]["vv"]  # nothing to find the folder by
    with pytest.raises(sentinel1.AssetProblem, match="manifest: missing from the item"):
        sentinel1.manifest_href(item, product)


def test_a_manifest_without_the_files_is_a_recorded_skip():
    item = _pc_item()
    product = parse(None, check_credentials=False).sources["s1"].product
    with pytest.raises(sentinel1.AssetProblem, match="safe-manifest"):
        sentinel1.xml_hrefs(item, b"<not-a-manifest/>", "https://x/manifest.safe", product)


def test_the_s1_product_and_its_xml_layout_are_checked():
    with pytest.raises(Exception, match="s1.product: unknown product 'sigma0'; choose grd"):
        parse({"s1": {"profile": "planetary-computer", "product": "sigma0"}},
              check_credentials=False)
    bad = {"profiles": {"m": {"extends": "planetary-computer", "products": {"s1-grd": {
        "xml": {"layout": "zip"}}}}}, "s1": {"profile": "m"}}
    with pytest.raises(Exception, match=r"profiles.m.products.s1-grd.xml.layout: unknown "
                                        r"value 'zip'; choose one of planetary-computer, safe"):
        parse(bad, check_credentials=False)


def test_the_period_s_grd_items_in_painting_order():
    """The selection both backends share (sar.selection): IW GRD with VV and VH in the
    period, oldest first (the newest ends on top); an item that is no GRD item is a
    recorded problem, the others left out are named."""
    import copy
    import datetime as dt

    base = json.loads((FIX / "pc_sentinel-1-grd_item.json").read_text())

    def item(iid: str, start: str, **props) -> dict:
        it = copy.deepcopy(base)
        it["id"] = iid
        it["properties"].update(start_datetime=start, **props)
        return it

    items = [item("late", "2023-06-28 21:07:05+00:00"),
             item("early", "2023-06-16 21:07:05+00:00"),
             item("ew", "2023-06-20 21:07:05+00:00", **{"sar:instrument_mode": "EW"}),
             item("vv-only", "2023-06-22 21:07:05+00:00", **{"sar:polarizations": ["VV"]}),
             item("july", "2023-07-01 21:07:05+00:00")]
    broken = item("broken", "2023-06-25 21:07:05+00:00")
    del broken["properties"]["sar:product_type"]
    ring = [tuple(p) for p in base["geometry"]["coordinates"][0]][:4]
    ring = ring + ring[:1]
    order, problems, left = sentinel1.painting_order(items + [broken], dt.date(2023, 6, 1),
                                                     dt.date(2023, 6, 30), ring)
    assert [i["id"] for i in order] == ["early", "late"]
    assert len(problems) == 1 and problems[0].startswith("broken: asset properties:")
    assert sorted(left) == ["ew", "july", "vv-only"]
