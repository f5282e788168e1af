"""Dataset classes for the cloud-removal trees that match scene ids exactly (torchgeo style).

The authors' loaders (``SEN12MSCR`` / ``SEN12MSCRTS`` in ``PatrickTUM/SEN12MS-CR-TS`` and
``PatrickTUM/UnCRtainTS``, ``data/dataLoader.py``) read these trees as they are, but pick a
split by *substring* match on folder names (``ROIs1158_spring_s1/s1_1`` also matches
``s1_106``) or from hard-coded ROI lists. These classes read the tree's own
``manifest.csv`` instead: a patch belongs to the split its row says (the leak-free split of
:mod:`sen12ms_build.dataset.splits`), compared by exact (seed, season, scene) or
(seed, roi) ids.

Samples are dicts of numpy arrays, or of ``torch`` tensors when ``torch`` is installed
(``as_tensor``); both classes are map-style (``__len__``, ``__getitem__``), so a
``torch.utils.data.DataLoader`` takes them. Only ``numpy`` and ``rasterio`` are needed::

    from sen12ms_build.variants.loaders import SEN12MSCRDataset
    ds = SEN12MSCRDataset("demo_out/sen12ms-cr", split="test")
    sample = ds[0]  # s1 (2, 256, 256), s2 (13, ...), s2_cloudy (13, ...), mask (2, ...)
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any, Callable

import numpy as np

SPLITS = ("train", "test", "all")


def _read(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return src.read()


def _rows(root: Path) -> list[dict[str, str]]:
    with open(Path(root) / "manifest.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["status"] == "kept"]


class _Base:
    def __init__(self, root: str | Path, split: str = "train",
                 transforms: Callable[[dict], dict] | None = None,
                 as_tensor: bool | None = None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.root = Path(root)
        if not (self.root / "manifest.csv").is_file():
            raise FileNotFoundError(f"{self.root}: no manifest.csv (not a dataset root)")
        self.split = split
        self.transforms = transforms
        self.as_tensor = (importlib.util.find_spec("torch") is not None
                          if as_tensor is None else as_tensor)

    def _out(self, sample: dict[str, Any]) -> dict[str, Any]:
        if self.as_tensor:
            import torch

            sample = {k: torch.from_numpy(np.ascontiguousarray(v))
                      if isinstance(v, np.ndarray) else v for k, v in sample.items()}
        return self.transforms(sample) if self.transforms else sample


class SEN12MSCRDataset(_Base):
    """A ``cr`` tree's pairs of one split.

    Args:
        root: the dataset root (``manifest.csv`` and the ``ROIs*_<mod>`` folders).
        split: ``train``, ``test`` or ``all``.
        transforms: applied to each sample dict.
        as_tensor: torch tensors (default: when torch is installed) or numpy arrays.

    A sample: ``s1`` (2, H, W) float32 dB, ``s2`` (13, H, W) and ``s2_cloudy`` (13, H, W)
    float32 L1C DN, ``mask`` (2, H, W) uint8 (cloud, shadow; 1 yes, 0 no, 255 no data),
    ``cloud_coverage`` (float), ``time_gap_days`` (float), ``id`` (``patch_id``).
    """

    def __init__(self, root: str | Path, split: str = "train",
                 transforms: Callable[[dict], dict] | None = None,
                 as_tensor: bool | None = None):
        super().__init__(root, split, transforms, as_tensor)
        rows = _rows(self.root)
        if rows and "s2_cloudy" not in rows[0]:
            raise ValueError(f"{self.root}: not a cr tree (manifest.csv has no s2_cloudy)")
        self.rows = [r for r in rows if split == "all" or r["split"] == split]

    def scenes(self) -> list[tuple[str, int]]:
        """The (branch, scene) ids of the split, sorted."""
        return sorted({(r["branch"], int(r["scene"])) for r in self.rows})

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        r = self.rows[index]
        return self._out({
            "id": r["patch_id"], "s1": _read(self.root / r["s1"]).astype(np.float32),
            "s2": _read(self.root / r["s2"]).astype(np.float32),
            "s2_cloudy": _read(self.root / r["s2_cloudy"]).astype(np.float32),
            "mask": _read(self.root / r["s2_cloudy_mask"]),
            "cloud_coverage": float(r["cloud_coverage"]),
            "time_gap_days": float(r["time_gap_days"]) if r["time_gap_days"] else float("nan")})


class SEN12MSCRTSDataset(_Base):
    """A ``cr-ts`` tree's patch locations of one split, each with its whole time series.

    A sample: ``s1`` (T, 2, H, W) float32 dB, ``s2`` (T, 13, H, W) float32 L1C DN,
    ``masks`` (T, 2, H, W) uint8, ``coverage`` (T,) float32 cloud coverage, ``s1_dates`` and
    ``s2_dates`` (lists of ISO times), ``id`` (``ROIs<seed>/<roi>/patch_<n>``).
    """

    def __init__(self, root: str | Path, split: str = "train",
                 transforms: Callable[[dict], dict] | None = None,
                 as_tensor: bool | None = None):
        super().__init__(root, split, transforms, as_tensor)
        rows = _rows(self.root)
        if rows and "s2_mask" not in rows[0]:
            raise ValueError(f"{self.root}: not a cr-ts tree (manifest.csv has no s2_mask)")
        locs: dict[tuple[int, int, int], list[dict[str, str]]] = {}
        for r in rows:
            if split == "all" or r["split"] == split:
                locs.setdefault((int(r["seed"]), int(r["roi"]), int(r["patch"])), []).append(r)
        self.locations = sorted(locs)
        self._rows = {k: sorted(v, key=lambda r: int(r["t"])) for k, v in locs.items()}

    def rois(self) -> list[tuple[int, int]]:
        """The (seed, roi) ids of the split, sorted."""
        return sorted({(s, r) for s, r, _ in self.locations})

    def __len__(self) -> int:
        return len(self.locations)

    def __getitem__(self, index: int) -> dict[str, Any]:
        key = self.locations[index]
        rows = self._rows[key]
        return self._out({
            "id": f"ROIs{key[0]}/{key[1]}/patch_{key[2]}",
            "s1": np.stack([_read(self.root / r["s1"]) for r in rows]).astype(np.float32),
            "s2": np.stack([_read(self.root / r["s2"]) for r in rows]).astype(np.float32),
            "masks": np.stack([_read(self.root / r["s2_mask"]) for r in rows]),
            "coverage": np.array([float(r["cloud_coverage"]) for r in rows], np.float32),
            "s1_dates": [r["s1_datetime"] for r in rows],
            "s2_dates": [r["s2_datetime"] for r in rows]})
