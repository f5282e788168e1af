"""Curation: the scene and patch rounds, reviewers' decisions, review pages, quicklooks and
the report."""
