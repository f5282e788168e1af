"""Raster I/O at the edges: atomic files, the GeoTIFF writer, the warp to UTM and the
tiler."""
