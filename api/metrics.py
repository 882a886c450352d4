"""Prometheus metrics of a worker, and its health probes' checks.

``GET /metrics`` (admins: Prometheus scrapes with an admin's API key as its bearer token)
answers in the Prometheus text format:

- ``spatial_http_requests_total{method,route,status}`` and
  ``spatial_http_request_duration_seconds{method,route}``: every HTTP answer, by the
  route's path template (``/collections/{collection_id}/items``; ``unmatched`` for paths
  no route serves, so junk paths cannot grow the series);
- ``spatial_tile_cache_{hits,misses}_total``, ``spatial_tile_cache_tiles``;
- ``spatial_db_pool_connections{pool,state}``, ``spatial_db_pool_waiting{pool}``,
  ``spatial_db_pool_max{pool}``, ``spatial_db_connections`` (this database's sessions);
- ``spatial_ingest_jobs{kind,state}``, ``spatial_ingest_features_loaded_total{kind}``,
  ``spatial_ingest_rejects_total{reason}`` (vector findings by reason),
  ``spatial_gps_rejects_total{reason}``, ``spatial_gps_positions_inserted_total``,
  ``spatial_sta_rejects_total{reason}``, ``spatial_sta_observations_inserted_total``,
  ``spatial_alarms_active{subsystem,level}``: read from the database, so they count what
  every process ingested;
- ``spatial_live_clients``, ``spatial_database_up``, and ``process_*`` (memory, CPU, open
  files) of the worker.

Each worker has its own request counters; a scrape sees the worker that answered it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"
_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

DATABASE_FIGURES = """
SELECT
  (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()),
  (SELECT coalesce(json_agg(json_build_array(kind, state, n)), '[]') FROM (
     SELECT kind, state, count(*) AS n FROM platform.ingest_jobs GROUP BY 1, 2) j),
  (SELECT coalesce(json_agg(json_build_array(kind, n)), '[]') FROM (
     SELECT kind, sum((report ->> 'features_loaded')::bigint) AS n FROM platform.ingest_jobs
     WHERE jsonb_typeof(report -> 'features_loaded') = 'number' GROUP BY 1) l),
  (SELECT coalesce(json_agg(json_build_array(reason, n)), '[]') FROM (
     SELECT e.key AS reason, sum(e.value::bigint) AS n FROM platform.ingest_jobs j,
       jsonb_each_text(CASE WHEN jsonb_typeof(j.report -> 'counts' -> 'errors') = 'object'
                            THEN j.report -> 'counts' -> 'errors' ELSE '{}' END) e
     WHERE e.value ~ '^[0-9]+$' GROUP BY 1) r),
  (SELECT coalesce(json_agg(json_build_array(reason, n)), '[]') FROM (
     SELECT reason, sum(count) AS n FROM gps.rejects GROUP BY 1) g),
  (SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables
   WHERE schemaname = 'gps' AND relname LIKE 'positions%%'),
  (SELECT coalesce(json_agg(json_build_array(reason, n)), '[]') FROM (
     SELECT reason, sum(count) AS n FROM sta.rejects GROUP BY 1) s),
  (SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables
   WHERE schemaname = 'sta' AND relname LIKE 'observations%%'),
  (SELECT coalesce(json_agg(json_build_array(subsystem, level, n)), '[]') FROM (
     SELECT subsystem, level, count(*) AS n FROM sta.alarms WHERE state = 'active'
     GROUP BY 1, 2) a)
"""
"""Everything the metrics read from the database, in one round trip."""


class Metrics:
    """One worker's registry: its request instruments, and the figures read at a scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "spatial_http_requests", "HTTP requests answered.",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "spatial_http_request_duration_seconds", "Time to answer an HTTP request.",
            ["method", "route"], buckets=_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._timers: dict[tuple[str, str], Any] = {}
        self._counters: dict[tuple[str, str, int], Any] = {}
        self.snapshot = _Snapshot()
        self.registry.register(self.snapshot)
        ProcessCollector(registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count and time one answer (the labelled children are kept: a lookup by
        labels was half of the cost)."""
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[method, route] = self.latency.labels(method, route)
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self.requests.labels(method, route, str(status))
            self._counters[method, route, status] = counter
        timer.observe(seconds)
        counter.inc()

    def render(self, app: Any, figures: Any) -> bytes:
        """The text exposition, with the worker's state and ``figures`` (the row of
        :data:`DATABASE_FIGURES`, None when the database did not answer) read now."""
        self.snapshot.take(app, figures)
        return generate_latest(self.registry)


class _Snapshot(Collector):
    """What a scrape reads from the worker and the database, as metric families."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def take(self, app: Any, figures: Any) -> None:
        tiles = app.state.tiles
        pools = GaugeMetricFamily(
            "spatial_db_pool_connections", "Pooled connections by state.", labels=["pool", "state"]
        )
        waiting = GaugeMetricFamily(
            "spatial_db_pool_waiting", "Requests waiting for a connection.", labels=["pool"]
        )
        largest = GaugeMetricFamily("spatial_db_pool_max", "A pool's most connections.",
                                    labels=["pool"])  # fmt: skip
        for name, pool in app.state.db.pools().items():
            stats = pool.get_stats()
            size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
            pools.add_metric([name, "in_use"], size - idle)
            pools.add_metric([name, "idle"], idle)
            waiting.add_metric([name], stats.get("requests_waiting", 0))
            largest.add_metric([name], pool.max_size)
        self.families = [
            CounterMetricFamily("spatial_tile_cache_hits", "Tile cache hits.", tiles.hits),
            CounterMetricFamily("spatial_tile_cache_misses", "Tile cache misses.", tiles.misses),
            GaugeMetricFamily("spatial_tile_cache_tiles", "Tiles in memory.", len(tiles)),
            pools, waiting, largest,
            GaugeMetricFamily("spatial_live_clients", "Clients of the live stream.",
                              len(app.state.live.subscribers)),
            GaugeMetricFamily("spatial_database_up", "Whether the database answered the scrape.",
                              0 if figures is None else 1),
        ]  # fmt: skip
        if figures is None:
            return
        sessions, jobs, loaded, rejects, gps_rejects, inserted, *sensors = figures
        sta_rejects, observed, alarms = sensors
        self.families += [
            GaugeMetricFamily(
                "spatial_db_connections", "Sessions open on the platform's database.", sessions
            ),
            _family(GaugeMetricFamily, "spatial_ingest_jobs",
                    "Ingest and process jobs by kind and state.", ["kind", "state"], jobs),
            _family(CounterMetricFamily, "spatial_ingest_features_loaded",
                    "Features loaded by ingest jobs.", ["kind"], loaded),
            _family(CounterMetricFamily, "spatial_ingest_rejects",
                    "Problems found in ingested features, by reason.", ["reason"], rejects),
            _family(CounterMetricFamily, "spatial_gps_rejects", "GPS input refused, by reason.",
                    ["reason"], gps_rejects),
            CounterMetricFamily(
                "spatial_gps_positions_inserted",
                "GPS positions stored (PostgreSQL's statistics, since their last reset).",
                inserted,
            ),
            _family(CounterMetricFamily, "spatial_sta_rejects",
                    "Sensor readings refused, by reason.", ["reason"], sta_rejects),
            CounterMetricFamily(
                "spatial_sta_observations_inserted",
                "Sensor readings stored (PostgreSQL's statistics, since their last reset).",
                observed,
            ),
            _family(GaugeMetricFamily, "spatial_alarms_active",
                    "Sensor alarms active, by subsystem and level.", ["subsystem", "level"],
                    alarms),
        ]  # fmt: skip

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


def _family(
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str, documentation: str, labels: list[str], rows: list[list[Any]],
) -> Metric:  # fmt: skip
    family = kind(name, documentation, labels=labels)
    for *values, value in rows:
        family.add_metric([str(v) for v in values], float(value or 0))
    return family


class Measure:
    """ASGI middleware timing every HTTP answer by its route's path template."""

    def __init__(self, app: ASGIApp, platform: Any) -> None:
        self.app = app
        self.platform = platform
        self.templates: dict[int, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            metrics: Metrics = self.platform.state.metrics
            elapsed = time.perf_counter() - start
            metrics.observe(scope["method"], self._template(scope), status, elapsed)

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None and hasattr(route, "path"):
            return str(route.path)
        if self.templates is None:
            self.templates = _templates(self.platform.router.routes)
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED
        return self.templates.get(id(endpoint), UNMATCHED)


def _templates(routes: list[Any]) -> dict[int, str]:
    """Each plain route's and mount's path template, by its endpoint (or app)."""
    found: dict[int, str] = {}
    for route in routes:
        if isinstance(route, Route):
            found.setdefault(id(route.endpoint), route.path)
        elif isinstance(route, Mount):
            found.setdefault(id(route.app), f"{route.path}/{{path}}")
    return found
