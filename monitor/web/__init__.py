"""The HTTP face of the daemon: the aiohttp app (``server``), Prometheus exposition (``metrics``), OpenAPI."""
