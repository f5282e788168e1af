"""The stac backend's offline dry run (`run --dry-run --backend stac`): requests, bytes and
granules per modality under each profile, held against the profiles' published quotas."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from sen12ms_build.cli import main

REPO = Path(__file__).resolve().parent.parent


def _plan(monkeypatch, *args: str) -> str:
    for var in ("CDSE_S3_ACCESS_KEY", "CDSE_S3_SECRET_KEY", "EARTHDATA_TOKEN", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent/.netrc")  # no credentials at all
    res = CliRunner().invoke(main, ["run", "--config", str(REPO / "configs" / "sen12ms.yaml"),
                                    "--backend", "stac", "--dry-run", "--season", "winter",
                                    "-q", *args])
    assert res.exit_code == 0, res.output
    return res.output


def test_the_plan_covers_every_profile_and_quota_offline(monkeypatch):
    """One plan (the paper's winter branch, 4 workers, no credentials, no network)."""
    out = _plan(monkeypatch, "--workers", "4")
    assert "150 scene(s)" in out  # the paper's winter branch: 100 land + 50 urban ROIs
    rows = {tuple(m.groups()[:3]): m.groups()[3:] for m in re.finditer(
        r"^(s2|s1|dem|lc)\s+(\S+)\s+(\S+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d.]+ \w+)"
        r"( \*)?$", out, re.M)}
    for key in (("s2", "cdse", "s2-l1c"), ("s2", "earth-search", "s2-l1c"),
                ("s2", "planetary-computer", "s2-l2a"), ("s1", "planetary-computer",
                                                         "s1-grd"),
                ("lc", "earthdata", "lc-mcd12q1")):
        assert key in rows, key
    assert rows[("s2", "cdse", "s2-l1c")][-1] == " *"  # the config's default source
    # winter 2016/17 had Sentinel-2A alone: 90 days / 10-day revisit, 1.3 orbit overlap,
    # (1 + 38.4 / 100)^2 MGRS tiles per 38.4 km ROI -> about 22 items per ROI, 150 ROIs
    items = int(rows[("s2", "cdse", "s2-l1c")][0].replace(",", ""))
    assert abs(items - 150 * 9 * 1.3 * 1.384 ** 2) < 150
    assert "monthly volume" in out
    # a plan that breaks a quota says which and by how much: 4 workers x 4 reads of CDSE =
    # 16 connections where 4 are allowed: 300 % over; at the
    # assumed 0.15 s per request that is 6,400 requests/min where 2,000 are allowed: 220 %
    assert "BREAKS 4 concurrent connections by 300 %" in out
    assert "BREAKS 2000 requests/min by 220 %" in out
