#!/usr/bin/env python
"""Derive the demo's real-clouds fixture (sen12ms_build/demo/data/real_clouds.npz) from the
s2cloudless 1.2.1 source distribution's test array (CC BY-SA 4.0).

    pip download s2cloudless==1.2.1 --no-deps --no-binary :all: -d /tmp/s2c
    python scripts/make_real_clouds.py /tmp/s2c/s2cloudless-1.2.1.tar.gz

The definition of the opacity and of the truth is in sen12ms_build/demo/realclouds.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
from pathlib import Path

from sen12ms_build.demo.realclouds import REAL_CLOUDS_FILE, derive_fixture

MEMBER = "s2cloudless-1.2.1/s2cloudless/TestInputs/input_arrays.npz"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sdist", type=Path, help="s2cloudless-1.2.1.tar.gz")
    ap.add_argument("--out", type=Path, default=REAL_CLOUDS_FILE)
    args = ap.parse_args(argv)
    with tarfile.open(args.sdist) as tar, tempfile.TemporaryDirectory() as tmp:
        tar.extract(MEMBER, tmp, filter="data")
        figures = derive_fixture(Path(tmp) / MEMBER, args.out)
    print(json.dumps({"out": str(args.out), "bytes": args.out.stat().st_size, **figures},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
