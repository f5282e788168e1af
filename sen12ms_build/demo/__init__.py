"""The offline demo: a small Sentinel-1/Sentinel-2/MODIS archive with known truth.

Production modules never import this package; only the command line's ``demo`` and
``demo-archive`` commands, the tests and the scripts do.
"""
