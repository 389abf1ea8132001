"""Ingest: reader (files, manifests) -> pipeline (read, decode, encode) -> writer (PostgreSQL)."""

from imgsearch.ingest.options import IngestChoices, IngestOptions
from imgsearch.ingest.pipeline import IngestReport, ingest
from imgsearch.sources import Failure

__all__ = ["Failure", "IngestChoices", "IngestOptions", "IngestReport", "ingest"]
