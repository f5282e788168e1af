"""Measure a built tree's STAC catalog (JSON Items vs stac-geoparquet) and extrapolate.

    python scripts/stac_size.py OUT/sen12ms [--triplets 180000]

Prints bytes, bytes on disk (file blocks plus one directory block per Item folder) and file
counts for the JSON catalog, the size of ``stac/items.parquet``, and both scaled linearly to
``--triplets`` Items (parquet compresses better at scale, so its figure is an upper bound).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sen12ms_build.dataset.stac import PARQUET, STAC_DIR, catalog_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--triplets", type=int, default=180_000)
    a = ap.parse_args()
    s = catalog_size(a.root)
    dirs = [p for p in (a.root / STAC_DIR).rglob("*") if p.is_dir()]
    dir_disk = sum(p.stat().st_blocks * 512 for p in dirs)
    n = s["items"]
    if not n:
        raise SystemExit(f"{a.root}: no STAC Items")
    f = a.triplets / n
    disk = s["json_disk_bytes"] + dir_disk
    print(f"items: {n}")
    print(f"JSON catalog: {s['json_files']} files + {len(dirs)} folders, "
          f"{s['json_bytes'] / 1e6:.2f} MB, {disk / 1e6:.2f} MB on disk")
    print(f"{PARQUET}: {s['parquet_bytes'] / 1e6:.3f} MB")
    print(f"extrapolated to {a.triplets} triplets: JSON {s['json_bytes'] * f / 1e9:.2f} GB "
          f"({disk * f / 1e9:.2f} GB on disk, {round((s['json_files'] + len(dirs)) * f)} "
          f"files and folders); geoparquet <= {s['parquet_bytes'] * f / 1e6:.0f} MB "
          f"(ratio {disk / max(s['parquet_bytes'], 1):.0f}x on disk)")


if __name__ == "__main__":
    main()
