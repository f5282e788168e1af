"""Reviewer decisions: list formats and how they override the automatic rounds."""

from __future__ import annotations

import json

import pytest

from sen12ms_build.curation import review
from sen12ms_build.raster.io import InputError


def test_parse_list_formats():
    page = json.dumps({"branch": "ROIs1158_spring", "reject": ["ROIs1158_spring_1_p3"],
                       "readmit": ["ROIs1158_spring_2_p6"]})
    assert review.parse_list(page) == (["ROIs1158_spring_1_p3"], ["ROIs1158_spring_2_p6"])
    text = """# reviewer A
ROIs1158_spring_1_p3
ROIs1158_spring_lc_1_p4.tif   # a file name works too
/data/ROIs1158_spring/s2_1/ROIs1158_spring_s2_1_p5.tif
reject ROIs1868_summer_2_p1
+ROIs1158_spring_2_p6
readmit ROIs1158_spring_2_p7
"""
    rejects, readmits = review.parse_list(text)
    assert rejects == ["ROIs1158_spring_1_p3", "ROIs1158_spring_1_p4", "ROIs1158_spring_1_p5",
                       "ROIs1868_summer_2_p1"]
    assert readmits == ["ROIs1158_spring_2_p6", "ROIs1158_spring_2_p7"]
    with pytest.raises(InputError, match="JSON"):
        review.parse_list("{not json")


def _records():
    rec = {"branch": "ROIs1158_spring", "season": "spring", "seed": 1158, "scene": 1,
           "status": "kept", "patches": 3, "patches_kept": 2}
    files = {dd: f"ROIs1158_spring/{dd}_1/ROIs1158_spring_{dd}_1_p{{}}.tif"
             for dd in ("s1", "s2", "lc")}
    patches = [{"patch": n, "row": 0, "col": 128 * (n - 1), "kept": kept, "reason": reason,
                "values": {"haze": 0.3 if reason else 0.0},
                "files": {k: v.format(n) for k, v in files.items()} if kept else {},
                "sha256": {k: "x" for k in files} if kept else {}}
               for n, kept, reason in ((1, True, ""), (2, True, ""), (3, False, "haze"))]
    return [(rec, patches)]


def test_apply_to_records(tmp_path):
    records = _records()
    assert review.apply_to_records(tmp_path, records) is records  # no review.json
    for n in (3,):  # the re-admitted patch's files are in the tree
        for dd in ("s1", "s2", "lc"):
            p = tmp_path / f"ROIs1158_spring/{dd}_1/ROIs1158_spring_{dd}_1_p{n}.tif"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(dd.encode())
    decisions = {"rejected": {"ROIs1158_spring_1_p1": {}},
                 "readmitted": {"ROIs1158_spring_1_p3": {}}}
    (rec, patches), = review.apply_to_records(tmp_path, records, decisions)
    p1, p2, p3 = patches
    assert (p1["kept"], p1["reason"], p1["review"], p1["files"]) == (False, "review",
                                                                      "rejected", {})
    assert p2 == records[0][1][1]
    assert (p3["kept"], p3["reason"], p3["review"]) == (True, "haze", "readmitted")
    assert p3["files"]["s2"] == "ROIs1158_spring/s2_1/ROIs1158_spring_s2_1_p3.tif"
    assert len(p3["sha256"]["s2"]) == 64 and rec["patches_kept"] == 2
    assert records[0][1][0]["kept"]  # the input is not modified


def test_load_decisions(tmp_path):
    assert review.load_decisions(tmp_path) == {"rejected": {}, "readmitted": {}}
    (tmp_path / "review.json").write_text("{broken")
    with pytest.raises(InputError, match="review.json"):
        review.load_decisions(tmp_path)


def test_the_tile_stage_applies_decisions_without_the_review_module():
    """pipeline and review no longer import each other at load time: the tile stage uses
    sen12ms_build.curation.decisions, which needs neither."""
    import subprocess
    import sys

    code = ("import sys, sen12ms_build.pipeline, sen12ms_build.curation.decisions\n"
            "assert 'sen12ms_build.curation.review' not in sys.modules, 'pipeline imports review'\n"
            "import sen12ms_build.curation.review\n"
            "print('ok')\n")
    from pathlib import Path

    repo = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=repo, env={**__import__("os").environ, "PYTHONPATH": repo})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    from sen12ms_build.curation import decisions

    assert review.honour_decisions is decisions.honour_decisions
