"""Shared fixtures: the demo archive and one full demo run, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from sen12ms_build.config import load_config

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "configs" / "demo.yaml"


@pytest.fixture(scope="session")
def demo_archive(tmp_path_factory) -> Path:
    """The full embedded demo archive (real Sentinel-2 ground, injected clouds)."""
    from sen12ms_build.demo_archive import write_demo_archive

    root = tmp_path_factory.mktemp("demo") / "archive"
    write_demo_archive(root, progress=False)
    return root


@pytest.fixture(scope="session")
def demo_config(demo_archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_out") / "sen12ms"
    return load_config(DEMO_CONFIG, {"backend.archive": str(demo_archive), "out": str(out)})


@pytest.fixture(scope="session")
def demo_run(demo_config):
    """The README's main job on the demo archive: (config, summary)."""
    from sen12ms_build.pipeline import run

    summary = run(demo_config, progress=False)
    return demo_config, summary
