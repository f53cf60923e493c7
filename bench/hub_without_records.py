"""``python -m bench.hub_without_records``: the hub with its ledger feed switched off (bench only).

The baseline of "hub throughput with decision records on >= 0.9x without" (``bench/ledger.py``):
the same ``python -m liaison.hub``, settings and rules, except that no decision record is built
or published, so the difference is exactly what the ledger feed costs the hub. Production has
no such switch on purpose: the ledger is the audit trail, and a hub that could run without it
could route messages that nobody can account for.
"""

import asyncio
import runpy
from typing import Any

from liaison.hub.consumer import HubConsumer


def _nothing_to_record(*_: Any) -> "asyncio.Future[object]":
    done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


if __name__ == "__main__":
    # The one seam the hub awaits per decision for its record (HubConsumer._record).
    setattr(HubConsumer, "_record", _nothing_to_record)  # noqa: B010 - patching a method
    runpy.run_module("liaison.hub", run_name="__main__", alter_sys=True)
