"""sen12ms-build: rebuild SEN12MS-style Sentinel-1/Sentinel-2/MODIS patch-triplet datasets."""

__version__ = "0.1.0"
