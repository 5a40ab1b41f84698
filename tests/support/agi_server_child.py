"""The survey FastAGI server alone in its own process, under a lowered descriptor limit.

``python -m tests.support.agi_server_child NOFILE STATE_PATH [hold]``: sets RLIMIT_NOFILE (soft and hard) to
NOFILE before anything opens a file, serves surveys for the calls ``L0``..``L9`` (answered, eligible) with the
cooldown and opt-out store in STATE_PATH, prints ``PORT <n>`` when listening, and on SIGTERM closes and prints
``STATS <json>`` of the server's counters. Logs go to stderr, as the daemon's do. With ``hold``, the event loop
is blocked from ``PORT`` until a line arrives on stdin (every connection waits in the listen queue, never
accepted), then the server closes at once: the shutdown finds them all queued.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import signal
import sys
from datetime import time as dtime


async def _serve(state_path: str, hold: bool) -> None:
    from monitor.core.survey import PolicyConfig, SurveyPolicy
    from monitor.survey.server import SurveyServer
    from monitor.survey.state import SurveyState
    from tests.support.calls import answered

    calls = {f"L{i}": answered(f"L{i}") for i in range(10)}
    state = SurveyState(state_path)
    server = SurveyServer(SurveyPolicy(PolicyConfig()), lookup=lambda uid, lid: calls.get(lid or ""),
                          on_result=lambda rec: None, cooldown=state, optout=state, port=0,
                          local=lambda ts: dtime(12))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await server.start()
    print("PORT", server.port, flush=True)
    if hold:
        sys.stdin.readline()  # no await: the accept loop never runs
    else:
        await stop.wait()
    await server.close(1.0)
    state.close()
    print("STATS", json.dumps(server.stats), flush=True)


def main(argv: list[str]) -> None:
    """Lower the limit first (before any import opens a file), then serve."""
    nofile = int(argv[0])
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(argv[1], argv[2:] == ["hold"]))


if __name__ == "__main__":
    main(sys.argv[1:])
