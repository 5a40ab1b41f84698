"""The demo's simulated call center (queues, agents, callers) speaking real AMI on a local port.

Not part of the product's path: nothing outside ``qmon demo`` (``monitor.cli.demo``) and the tests imports it.
"""

#: The simulator only listens on 127.0.0.1, so a fixed demo credential exposes nothing.
DEMO_USER, DEMO_SECRET = "qmon", "qmon-demo"
