"""Ingest: radar files in, the Zarr store out (readers, alignment, engines, manifest)."""
