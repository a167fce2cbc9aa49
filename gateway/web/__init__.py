"""Local web dashboard, its live feed and Prometheus ``/metrics`` (aiohttp, assets shipped)."""
