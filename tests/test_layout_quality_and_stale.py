"""layout: the quality layer's path and the removal of stale patch files (files written here)."""

from __future__ import annotations

from pathlib import Path

from sen12ms_build.dataset import layout


def test_quality_path_is_a_sibling_of_the_data_folders():
    got = layout.quality_path(Path("/d/out"), 1868, "summer", 5, 12)
    assert got == Path("/d/out/ROIs1868_summer/qa_5/ROIs1868_summer_qa_5_p12.tif")
    assert got.parent.parent == layout.patch_path(Path("/d/out"), 1868, "summer", "s1", 5,
                                                  12).parent.parent


def _patch(root: Path, dd: str, scene: int, patch: int) -> Path:
    p = layout.patch_path(root, 1158, "spring", dd, scene, patch)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"tif")
    return p


def test_remove_stale_patches_keeps_exactly_the_given_files(tmp_path):
    branch = layout.branch_name(1158, "spring")
    keep = [_patch(tmp_path, dd, 3, 1) for dd in layout.DATA_IDS]
    stale = [_patch(tmp_path, dd, 3, p) for dd in ("s1", "s2") for p in (2, 3)]
    other_scene = _patch(tmp_path, "s2", 4, 9)
    note = tmp_path / branch / "s2_3" / "notes.txt"  # not a .tif: untouched
    note.write_text("x")
    mine = _patch(tmp_path, "s2", 3, 7)  # a patch-like file the tool did not write
    owned = keep + stale + [other_scene, note]  # the record of written files
    n = layout.remove_stale_patches(tmp_path, branch, 3, keep, owned)
    assert n == len(stale) == 4
    assert all(p.exists() for p in keep)
    assert not any(p.exists() for p in stale)
    assert other_scene.exists() and note.exists() and mine.exists()
    # nothing left to remove; a scene with no folders at all
    assert layout.remove_stale_patches(tmp_path, branch, 3, keep, owned) == 0
    assert layout.remove_stale_patches(tmp_path, branch, 99, [], owned) == 0


def test_write_lines_one_per_line(tmp_path):
    layout.write_lines(tmp_path / "a" / "list.txt", ["x.tif", "y.tif"])
    assert (tmp_path / "a" / "list.txt").read_text() == "x.tif\ny.tif\n"


def test_csv_rows_by_sequence_or_mapping(tmp_path):
    path = tmp_path / "t.csv"
    layout.write_csv(path, ["a", "b", "c"], [[1, 2, 3], {"c": "z", "a": "x", "extra": 0}])
    assert layout.read_csv(path) == [{"a": "1", "b": "2", "c": "3"},
                                     {"a": "x", "b": "", "c": "z"}]
