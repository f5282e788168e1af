"""The dataset: layout and names, splits, provenance, the STAC catalog, Croissant, the data
card, validation and finalize."""
