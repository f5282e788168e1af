"""State file bookkeeping (sen12ms_build.state): what counts as done, what is forgotten.

Unit tests on a real SQLite file and real output files written here; no pipeline run.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sen12ms_build.raster.io import OutputError, sha256
from sen12ms_build.state import STAGES, State, downstream


@pytest.fixture()
def state(tmp_path: Path):
    # a nested directory that does not exist yet: State creates its parents
    with State(tmp_path / "root" / ".work" / "state.sqlite") as st:
        yield st


def _out(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_done_only_with_the_same_fingerprint(state, tmp_path):
    out = _out(tmp_path, "a.tif", b"x" * 100)
    assert state.done("b", 1, "warp", "fp1") is None  # nothing recorded yet
    rec = state.finish("b", 1, "warp", "fp1", {"k": 7, "name": "scene 1"}, [out])
    assert rec == {"k": 7, "name": "scene 1"}
    assert state.done("b", 1, "warp", "fp1") == {"k": 7, "name": "scene 1"}
    assert state.done("b", 1, "warp", "fp2") is None  # changed settings: redo
    assert state.done("b", 2, "warp", "fp1") is None  # other scene
    assert state.done("b", 1, "tile", "fp1") is None  # other stage
    assert state.done("c", 1, "warp", "fp1") is None  # other branch


def test_outputs_must_be_present_with_their_size(state, tmp_path):
    a = _out(tmp_path, "a.tif", b"a" * 50)
    b = _out(tmp_path, "b.tif", b"b" * 70)
    state.finish("br", 3, "tile", "fp", {"n": 2}, [a, b])
    assert state.done("br", 3, "tile", "fp") == {"n": 2}
    b.write_bytes(b"b" * 69)  # truncated
    assert state.done("br", 3, "tile", "fp") is None
    b.write_bytes(b"b" * 70)  # the same bytes again (re-hashed: its time changed)
    assert state.done("br", 3, "tile", "fp") == {"n": 2}
    b.write_bytes(b"b" * 35 + b"c" + b"b" * 34)  # one byte changed, same size (issue 20)
    record, damaged = state.check("br", 3, "tile", "fp")
    assert record is None and damaged == [f"{b} was changed after it was written"]
    a.unlink()  # deleted
    assert state.done("br", 3, "tile", "fp") is None


def test_finish_records_size_and_sha256(state, tmp_path):
    a = _out(tmp_path, "a.tif", b"hello world")
    state.finish("br", 1, "export", "fp", {}, [a])
    db = sqlite3.connect(state.path)
    import json
    outs = json.loads(db.execute("SELECT outputs FROM stages").fetchone()[0])
    db.close()
    assert outs == {str(a): [11, sha256(a), a.stat().st_mtime_ns]}


def test_set_outputs_rerecords_and_reports_missing_stage(state, tmp_path):
    a = _out(tmp_path, "a.tif", b"a" * 10)
    b = _out(tmp_path, "b.tif", b"b" * 10)
    assert state.set_outputs("br", 1, "tile", [a]) is False  # not recorded
    state.finish("br", 1, "tile", "fp", {"r": 1}, [a, b])
    b.unlink()  # a reviewer removed a patch on purpose
    assert state.done("br", 1, "tile", "fp") is None
    assert state.set_outputs("br", 1, "tile", [a]) is True
    assert state.done("br", 1, "tile", "fp") == {"r": 1}  # fingerprint and record kept


def test_forget_one_scene_or_the_whole_branch(state, tmp_path):
    for scene in (1, 2, 3):
        for stage in STAGES:
            state.finish("br", scene, stage, "fp", {"s": scene})
    state.finish("other", 1, "tile", "fp", {"s": 1})
    assert state.forget("br", 2, ("warp", "tile")) == 2
    assert state.done("br", 2, "export", "fp") == {"s": 2}
    assert state.done("br", 2, "warp", "fp") is None
    assert state.done("br", 1, "warp", "fp") == {"s": 1}  # other scenes untouched
    assert state.forget("br", None, ("tile",)) == 2  # scenes 1 and 3
    assert state.done("br", 1, "tile", "fp") is None
    assert state.done("br", 3, "export", "fp") == {"s": 3}
    assert state.done("other", 1, "tile", "fp") == {"s": 1}  # other branch untouched
    assert state.forget("br", 7) == 0


def test_records_sorted_per_stage(state):
    state.finish("b2", 1, "tile", "fp", {"x": "b2-1"})
    state.finish("b1", 9, "tile", "fp", {"x": "b1-9"})
    state.finish("b1", 2, "tile", "fp", {"x": "b1-2"})
    state.finish("b1", 5, "warp", "fp", {"x": "warp"})
    assert state.records() == [("b1", 2, {"x": "b1-2"}), ("b1", 9, {"x": "b1-9"}),
                               ("b2", 1, {"x": "b2-1"})]
    assert state.records("warp") == [("b1", 5, {"x": "warp"})]


def test_reopen_sees_the_same_rows(tmp_path):
    path = tmp_path / "deep" / "er" / "state.sqlite"
    with State(path) as st:
        st.finish("br", 1, "tile", "fp", {"a": 1})
    with State(path) as st:  # the directory exists now: opening again is fine
        assert st.done("br", 1, "tile", "fp") == {"a": 1}
        assert st._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unopenable_state_file_is_an_output_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputError, match="cannot open the state file"):
        State(blocker / "state.sqlite")


def test_downstream():
    assert downstream("export") == ("export", "warp", "tile")
    assert downstream("warp") == ("warp", "tile")
    assert downstream("tile") == ("tile",)


def test_outputs_below_the_root_are_relative_so_a_copied_tree_resumes(tmp_path):
    import shutil

    root = tmp_path / "root"
    out = root / "ROIs1_spring" / "s2_1" / "p.tif"
    out.parent.mkdir(parents=True)
    out.write_bytes(b"x" * 10)
    with State(root / ".work" / "state.sqlite") as st:
        st.finish("br", 1, "tile", "fp", {"r": 1}, [out])
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    out.unlink()  # the original's file: the copy must not depend on it
    with State(copy / ".work" / "state.sqlite") as st:
        assert st.done("br", 1, "tile", "fp") == {"r": 1}
        assert st.written() == [copy / "ROIs1_spring" / "s2_1" / "p.tif"]
        (copy / "ROIs1_spring" / "s2_1" / "p.tif").unlink()
        assert st.check("br", 1, "tile", "fp") == (
            None, [f"{copy / 'ROIs1_spring' / 's2_1' / 'p.tif'} is missing"])


def test_record_of_written_files(state, tmp_path):
    """Outputs of finished stages and files recorded by hand; ``written(under)`` is exact
    about folder names (no prefix of another folder, no SQL wildcard)."""
    root = state.root
    files = [root / "ROIs1_spring" / "s2_1" / "a.tif", root / "ROIs1_spring" / "s2_10" / "b",
             root / "ROIs1%spring" / "c", root / "stac" / "catalog.json"]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"1")
    state.finish("br", 1, "tile", "fp", {}, files[:1])
    state.wrote(files[1:])
    assert state.written() == sorted(files)
    assert state.written(root / "ROIs1_spring" / "s2_1") == [files[0]]
    assert state.written(root / "ROIs1_spring") == files[:2]
    state.unwrote([files[0]])
    assert state.written(root / "ROIs1_spring") == [files[1]]
    assert state.scenes() == [("br", 1)]


def test_is_state_file_reads_without_changing(tmp_path):
    from sen12ms_build.state import is_state_file

    with State(tmp_path / "s.sqlite") as st:
        st.finish("b", 1, "tile", "fp", {})
    assert is_state_file(tmp_path / "s.sqlite")
    foreign = tmp_path / "other.sqlite"
    foreign.write_bytes(b"not a database at all")
    assert not is_state_file(foreign) and foreign.read_bytes() == b"not a database at all"
    assert not is_state_file(tmp_path / "missing.sqlite")


def test_an_earlier_versions_state_file_is_read_as_written(tmp_path, monkeypatch):
    """Rows of an earlier version: outputs as given (absolute, or relative to the run's
    working folder), size and checksum only; their files are adopted into the record."""
    import json

    monkeypatch.chdir(tmp_path)
    root = tmp_path / "out"
    patch = root / "ROIs1_spring" / "s2_1" / "p.tif"
    patch.parent.mkdir(parents=True)
    patch.write_bytes(b"y" * 8)
    path = root / ".work" / "state.sqlite"
    path.parent.mkdir()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE stages (branch TEXT NOT NULL, scene INTEGER NOT NULL, stage TEXT "
               "NOT NULL, fingerprint TEXT NOT NULL, record TEXT NOT NULL, outputs TEXT NOT "
               "NULL, finished REAL NOT NULL, PRIMARY KEY (branch, scene, stage))")
    outs = {"out/ROIs1_spring/s2_1/p.tif": [8, sha256(patch)]}  # relative to the cwd
    db.execute("INSERT INTO stages VALUES ('b', 1, 'tile', 'fp', '{}', ?, 0)",
               (json.dumps(outs),))
    db.commit()
    db.close()
    with State(path) as st:
        assert st.done("b", 1, "tile", "fp") == {}
        assert st.written() == [patch]


def test_state_path_is_the_documented_place(tmp_path):
    """README: the state file is ``<out>/.work/state.sqlite``."""
    from sen12ms_build.state import state_path

    assert state_path(tmp_path) == tmp_path / ".work" / "state.sqlite"
    assert state_path(str(tmp_path / "x")) == tmp_path / "x" / ".work" / "state.sqlite"


def test_discard_deletes_every_recorded_file_and_counts_them(state):
    """``discard`` deletes each recorded path (the first one too) and returns how many it
    deleted; a file outside the record is left alone, and emptied folders go."""
    root = state.root
    mine = [root / "stac" / "b" / f"i{k}" / f"i{k}.json" for k in range(3)]
    foreign = root / "stac" / "b" / "notes.txt"
    for f in [*mine, foreign]:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"{}")
    state.wrote(mine)
    assert state.discard([*mine, foreign]) == 3
    assert not any(f.exists() for f in mine) and foreign.read_bytes() == b"{}"
    assert not any((root / "stac" / "b" / f"i{k}").exists() for k in range(3))
    assert state.written() == []


def test_replace_written_stays_inside_its_folder(state):
    """``replace_written(under, now)``: the stale recorded files below ``under`` go, those of
    sibling folders whose names start like it (``stac0``, ``stac-old``) stay."""
    root = state.root
    kept, stale = root / "stac" / "a.json", root / "stac" / "x" / "b.json"
    siblings = [root / "stac0" / "c.json", root / "stac-old" / "d.json"]
    for f in [kept, stale, *siblings]:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"{}")
    state.wrote([kept, stale, *siblings])
    assert state.replace_written(root / "stac", [kept]) == 1
    assert kept.exists() and not stale.exists()
    assert all(f.exists() for f in siblings)
    assert set(state.written()) == {kept, *siblings}
