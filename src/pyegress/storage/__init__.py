"""Destinations for finished outputs: S3-compatible object storage (more providers to come)."""
