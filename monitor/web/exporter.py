"""The standard exporter series beside qmon's own: ``process_*``, ``python_*`` and ``qmon_build_info``.

Prometheus exporters conventionally expose the process and runtime collectors and a ``*_build_info`` gauge
(value 1, the version in labels) so that dashboards can show what runs and alert on restarts or memory growth.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor import __version__


class _BuildInfo(Collector):
    def collect(self) -> list[GaugeMetricFamily]:
        g = GaugeMetricFamily("qmon_build_info", "qmon version (value is always 1)",
                              labels=["version", "python_version"])
        g.add_metric([__version__, platform.python_version()], 1.0)
        return [g]


def exporter_registry() -> CollectorRegistry:
    """A registry for the daemon's metrics that already holds the standard collectors below."""
    registry = CollectorRegistry(auto_describe=True)
    register_process_collectors(registry)
    return registry


def register_process_collectors(registry: CollectorRegistry) -> None:
    """Add ``process_*`` (CPU s, memory bytes, fds, start time), ``python_*`` (GC, platform) and
    ``qmon_build_info{version,python_version}`` to ``registry``."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(_BuildInfo())
