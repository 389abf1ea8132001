"""Measuring retrieval quality: metrics, labelled evaluation, copy detection."""
