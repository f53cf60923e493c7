"""``python -m bench.hub_source``: ``python -m liaison.hub`` from another source tree.

The tree is ``LIAISON_BENCH_HUB_SOURCE`` (a checkout or ``git archive`` of Liaison, with its
``liaison/`` package of symlinks), put first on the import path before anything of Liaison is
imported: ``bench.hub_cpu --baseline DIR`` runs the code before a change and after it in
alternating rounds of one run, on the same broker, workload and machine load.
"""

import os
import runpy
import sys

source = os.environ.get("LIAISON_BENCH_HUB_SOURCE")
if not source:
    sys.exit("LIAISON_BENCH_HUB_SOURCE names no source tree")
sys.path.insert(0, source)
if __name__ == "__main__":
    runpy.run_module("liaison.hub", run_name="__main__", alter_sys=True)
