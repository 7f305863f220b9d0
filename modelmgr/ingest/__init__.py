"""Ingest: uploads, zips, local imports -> detected, inspected, stored model versions."""
