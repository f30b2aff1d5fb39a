# -*- test-case-name: tests.test_web -*-
"""
C{/metrics}: the node's numbers in the Prometheus text format.

The services keep plain integer counters; they are read only when
Prometheus scrapes, so the hot paths pay one addition, not a metrics
library call per frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from twisted.web.server import Request

from xmeet.web_errors import ExactResource

__all__ = ["MetricsResource", "NodeCollector"]


class NodeCollector:
    """
    Collects one node's numbers at scrape time.

    @param read: returns the node's current numbers (see
        L{xmeet.service.Node.numbers}).
    """

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        """
        One metric family per number.
        """
        numbers = self._read()
        yield _gauge("xmeet_xgate_connections", "Open xgate WebSocket connections.", numbers)
        yield _gauge("xmeet_socketio_sessions", "Open Engine.IO sessions.", numbers)
        yield _gauge("xmeet_xnests_live", "Xnests with members on this node.", numbers)
        yield _counter(
            "xmeet_messages_received",
            "Messages members sent to xnests, commands included.",
            numbers,
        )
        yield _counter("xmeet_frames_sent", "Xnest frames handed to local members.", numbers)
        yield _gauge(
            "xmeet_redis_up", "1 while the Redis link is up (always 1 in memory).", numbers
        )
        yield _gauge("xmeet_redis_backlog", "Writes waiting for Redis to come back.", numbers)
        yield _counter("xmeet_redis_errors", "Failed Redis commands.", numbers)
        yield _gauge(
            "xmeet_redis_latency_seconds", "Duration of the last xnest read from Redis.", numbers
        )
        yield _counter(
            "xmeet_http_request_timeouts",
            "HTTP connections closed because a request did not arrive in time.",
            numbers,
        )
        yield _by_reason(
            "xmeet_handshakes_refused",
            "WebSocket and Engine.IO handshakes refused (origin, per-address limits, "
            "a full node), by the refusal's error code.",
            numbers,
        )


def _gauge(name: str, documentation: str, numbers: dict[str, Any]) -> Metric:
    return GaugeMetricFamily(name, documentation, value=numbers.get(name, 0))


def _counter(name: str, documentation: str, numbers: dict[str, Any]) -> Metric:
    return CounterMetricFamily(name, documentation, value=numbers.get(name, 0))


def _by_reason(name: str, documentation: str, numbers: dict[str, Any]) -> Metric:
    counter = CounterMetricFamily(name, documentation, labels=["reason"])
    for reason, value in sorted(numbers.get(name, {}).items()):
        counter.add_metric([reason], value)
    return counter


class MetricsResource(ExactResource):
    """
    Serves the registry in the Prometheus text format.
    """

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        super().__init__()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(NodeCollector(read))

    def render_GET(self, request: Request) -> bytes:
        """
        The current numbers.
        """
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return generate_latest(self._registry)
