"""Prometheus metrics of one service process (``GET /metrics``, text format), through ``prometheus_client``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "attribution_requests", "HTTP requests answered", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "attribution_request_seconds",
            "request latency",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.loaded_spaces = Gauge("attribution_loaded_spaces", "spaces loaded in this process", registry=self.registry)
        self.queue_depth = Gauge(
            "attribution_queue_depth", "feature-space requests waiting or running", registry=self.registry
        )
        self.batch_size = Histogram(
            "attribution_batch_size",
            "queries per embedding batch",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )

    def text(self) -> bytes:
        return generate_latest(self.registry)
