"""Prometheus metrics of the service: requests, their latency, search latency, images."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "imgsearch_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "imgsearch_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )
        self.search = Histogram(
            "imgsearch_search_seconds", "Search latency (encode + query)", ["kind"], registry=self.registry
        )
        self.images = Gauge("imgsearch_images_indexed", "Images in the index", registry=self.registry)
