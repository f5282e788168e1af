"""A small run config for the cloud-removal variants' tests: two listed ROIs of one
256 px patch each (2560 m at 10 m, stride 256) on the demo archive, quicklooks on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent


def small_config(folder: Path, archive: Path, **extra: Any) -> Path:
    """Two ROIs (the tiny config's places, 6 km apart: two split groups), one patch each."""
    folder.mkdir(parents=True, exist_ok=True)
    rois = folder / "rois.csv"
    rois.write_text("lon,lat,scene\n-75.64,37.70,1\n-75.60,37.65,2\n")
    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    data["sampling"].update(rois_file=str(rois), roi_size_m=2560)
    data["backend"]["archive"] = str(archive)
    data["out"] = str(folder / "out")
    data["tiling"] = {"patch_size": 256, "stride": 256}
    data["quicklooks"] = True
    data.update(extra)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
