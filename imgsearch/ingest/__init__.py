"""Ingest: reader (files, manifests) -> pipeline (read, decode, encode) -> writer (PostgreSQL)."""

from imgsearch.ingest.pipeline import Failure, IngestReport, ingest

__all__ = ["Failure", "IngestReport", "ingest"]
