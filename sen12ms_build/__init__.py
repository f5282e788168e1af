"""sen12ms-build: rebuild SEN12MS-style Sentinel-1/Sentinel-2/MODIS patch-triplet datasets."""

import os as _os

__version__ = "0.1.0"

# GDAL's block cache defaults to 5 % of the machine's memory; the pipeline reads and writes
# by windows and needs far less. A user's own GDAL_CACHEMAX wins.
_os.environ.setdefault("GDAL_CACHEMAX", "256")
