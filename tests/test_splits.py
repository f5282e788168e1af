"""The train/test split (layout.split_scenes): its fraction, determinism and disjointness,
as unit tests on scene keys, and the fraction of the demo run's split lists.

The split is called through :func:`split` only, so that a later split by spatial groups
(scenes sharing a place never on both sides) extends these tests instead of replacing
them: add its property tests beside these, keep these properties.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sen12ms_build.dataset import layout

Key = tuple[str, int]


def keys(n: int, branches: tuple[str, ...] = ("ROIs1158_spring", "ROIs1868_summer")) -> list[Key]:
    """``n`` distinct (branch, scene) keys spread over the branches."""
    return [(branches[i % len(branches)], i // len(branches) + 1) for i in range(n)]


def split(scene_keys: list[Key], fraction: float, seed: int) -> tuple[set[Key], set[Key]]:
    """(train, test) sets of the keys."""
    test = layout.split_scenes(list(scene_keys), fraction, seed)
    return set(scene_keys) - test, test


def expected_n_test(n: int, fraction: float) -> int:
    """The documented count: ceil(n * fraction), at least one and at most n - 1 when there
    are two or more scenes; none with fewer or with fraction 0."""
    if n < 2 or fraction <= 0:
        return 0
    return min(max(1, math.ceil(n * fraction)), n - 1)


@pytest.mark.parametrize("n, fraction, n_test", [
    (12, 0.2, 3),  # ceil(2.4)
    (10, 0.2, 2),
    (10, 0.25, 3),  # ceil(2.5)
    (5, 0.5, 3),
    (2, 0.2, 1),  # at least one test scene
    (3, 0.9, 2),  # at least one training scene
    (20, 0.05, 1),
    (1, 0.5, 0),  # one scene: all training
    (12, 0.0, 0),
])
def test_test_share_follows_the_fraction(n, fraction, n_test):
    assert expected_n_test(n, fraction) == n_test
    for seed in (0, 1, 7):
        train, test = split(keys(n), fraction, seed)
        assert len(test) == n_test, (seed, sorted(test))
        assert len(train) == n - n_test


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.25, 1 / 3])
def test_test_is_the_minority_for_small_fractions(fraction):
    for n in range(4, 40):
        train, test = split(keys(n), fraction, seed=3)
        assert len(test) <= len(train)
        assert len(test) == expected_n_test(n, fraction)


def test_deterministic_and_independent_of_input_order():
    ks = keys(25)
    _, a = split(ks, 0.2, seed=5)
    _, b = split(list(reversed(ks)), 0.2, seed=5)
    _, c = split(ks[7:] + ks[:7], 0.2, seed=5)
    assert a == b == c
    # the seed matters: over a few seeds the test set changes
    assert len({frozenset(split(ks, 0.2, seed=s)[1]) for s in range(6)}) > 1


def test_disjoint_and_complete():
    for n in (2, 3, 12, 31):
        for seed in (0, 11):
            ks = keys(n)
            train, test = split(ks, 0.3, seed)
            assert not train & test
            assert train | test == set(ks)
            assert test <= set(ks)


def test_every_scene_can_be_drawn():
    """The shuffle reaches every scene (not always the first or last ones)."""
    ks = keys(10)
    drawn: set[Key] = set()
    for seed in range(60):
        drawn |= split(ks, 0.2, seed)[1]
    assert drawn == set(ks)


@pytest.mark.slow
def test_demo_run_split_lists_follow_the_method(demo_run):
    """The demo run's train/test lists follow its split method: with ``groups`` (the
    default) whole overlap groups go to one side, so the demo, whose 12 ROIs all overlap
    in one 19 km scene, is one group and all train (splits.json says so); the per-ROI
    split of the same scenes follows the configured fraction."""
    import json

    cfg, _ = demo_run
    root = Path(cfg.out)
    scene = lambda name: (layout.parse_patch_filename(name).season,  # noqa: E731
                          layout.parse_patch_filename(name).scene)
    train = {scene(n) for n in (root / "train_list.txt").read_text().split()}
    test = {scene(n) for n in (root / "test_list.txt").read_text().split()}
    assert not train & test
    n = len(train | test)
    assert n >= 2
    meta = json.loads((root / "splits.json").read_text())
    assert cfg.splits.method == meta["method"] == "groups"
    assert meta["shared_area_m2"] == 0.0
    in_groups = sorted(k for g in meta["groups"] for k in g)
    assert len(in_groups) == len(set(in_groups)) == n  # every scene in exactly one group
    if len(meta["groups"]) == 1:
        assert not test and meta["test_scenes"] == 0
    keys_ = sorted({(b, int(sc)) for b, sc in (k.split("/") for k in in_groups)})
    _, roi_test = split(keys_, cfg.splits.test_fraction, cfg.splits.seed)
    assert len(roi_test) == expected_n_test(n, cfg.splits.test_fraction), (len(roi_test), n)
