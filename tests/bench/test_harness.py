"""The bench harness's own instruments against the real broker: the CPU meter and the shovel.

These pin the faults that once skewed or broke rounds: the meter counting other Erlang VMs,
a shovel's source queue coming back as a classic queue, a round waiting out its time limit
for a shovel that had gone.
"""

import asyncio
import contextlib
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator

import psutil
import pytest

from bench.broker import (
    Counter,
    ShovelWatch,
    amqp_url,
    create_partner,
    create_vhost,
    delete_shovel,
    management_client,
    remove_stale_runs,
    shovel_state,
    start_shovel,
    wait_until,
)
from bench.processes import CpuMeter, amqp_port, broker_pids
from bench.publish import preload_queue
from liaison.directory.management import ManagementClient

pytestmark = pytest.mark.broker


def test_broker_meter_counts_the_broker_node_and_not_rabbitmqctl() -> None:
    """The meter watches the VM listening on the AMQP port, not a rabbitmqctl call's own VM."""
    pids = broker_pids()
    root = psutil.Process(pids[0])
    assert root.name() == "beam.smp"
    assert any(c.laddr.port == amqp_port() for c in root.net_connections("tcp"))
    ctl = subprocess.Popen(
        ["rabbitmqctl", "eval", "timer:sleep(20000)."],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ctl_vm = None
        deadline = time.monotonic() + 15
        while ctl_vm is None and time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):
                ctl_vm = next(
                    (
                        c
                        for c in psutil.Process(ctl.pid).children(recursive=True)
                        if c.name() == "beam.smp"
                    ),
                    None,
                )
            time.sleep(0.1)
        assert ctl_vm is not None, "rabbitmqctl started no Erlang VM"
        assert ctl_vm.pid not in pids
        assert ctl_vm.pid not in CpuMeter.broker().pids
    finally:
        ctl.kill()
        ctl.wait()


@pytest.fixture
async def vhost() -> AsyncIterator[tuple[ManagementClient, str]]:
    """A throwaway vhost with the admin's rights; deleted afterwards."""
    name = f"liaison-bench-test-{secrets.token_hex(4)}"
    api = management_client()
    await api.open()
    await create_vhost(api, name)
    try:
        yield api, name
    finally:
        await api.delete_vhost(name)
        await api.close()


async def test_shovel_goes_before_its_queue_and_the_queue_stays_gone(
    vhost: tuple[ManagementClient, str],
) -> None:
    """After a round the shovel is deleted and gone first; its source, deleted next, stays gone."""
    api, name = vhost
    counter = await Counter(amqp_url(name)).open()
    try:
        for queue in ("src", "dst"):
            await counter.declare(queue)
        await preload_queue(amqp_url(name), "src", [b"{}"] * 50)
        await start_shovel(api, name, "s", "src", dest_queue="dst")
        await wait_until(
            counter, source=["src"], source_total=50, dest=["dst"], dest_total=50, limit_seconds=60
        )
        # It does not delete itself: the round's end is the queue counts, not the shovel's.
        assert await shovel_state(api, name, "s") in {"starting", "running"}
        await delete_shovel(api, name, "s")
        assert await shovel_state(api, name, "s") is None
        await counter.delete("src")
        await asyncio.sleep(1.0)
        assert await api.queue(name, "src") is None
        assert (await api.queue(name, "dst")) is not None
    finally:
        await counter.close()


async def test_a_round_fails_at_once_when_its_shovel_is_gone(
    vhost: tuple[ManagementClient, str],
) -> None:
    """Messages left behind a vanished shovel end the round with an error (RuntimeError), not
    by waiting out its time limit (TimeoutError)."""
    api, name = vhost
    counter = await Counter(amqp_url(name)).open()
    try:
        for queue in ("src", "dst"):
            await counter.declare(queue)
        await start_shovel(api, name, "s", "src", dest_queue="dst")
        watch = ShovelWatch(api, name, "s", interval=0.2).start()
        await delete_shovel(api, name, "s")
        await preload_queue(amqp_url(name), "src", [b"{}"] * 10)
        with pytest.raises(RuntimeError, match="stopped before the queue was drained"):
            await wait_until(
                counter,
                source=["src"],
                source_total=10,
                dest=["dst"],
                dest_total=10,
                limit_seconds=120,
                alive=watch.alive,
            )
        await watch.stop()
    finally:
        await counter.close()


async def test_a_killed_runs_vhost_and_users_go_and_a_running_ones_stay() -> None:
    """A bench run killed outright leaves its vhost and partner users: the next run's
    ``remove_stale_runs`` deletes those of a run on this host whose process is gone, and
    keeps a running one's and any vhost not described as a bench run."""
    api = management_client()
    await api.open()
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    dead, live = secrets.token_hex(4), secrets.token_hex(4)
    vhosts = {run: f"liaison-bench-{run}" for run in (dead, live)}
    other = f"liaison-test-other-{secrets.token_hex(4)}"
    try:
        for run, vhost in vhosts.items():
            await create_vhost(api, vhost)
            await create_partner(api, vhost, f"bench-{run}-dpko")
        description = f"liaison bench run: host={socket.gethostname()} pid={gone.pid}"
        await api.request("PUT", f"/vhosts/{vhosts[dead]}", {"description": description})
        await api.put_vhost(other)
        assert vhosts[dead] in await remove_stale_runs(api)
        assert not await api.vhost_exists(vhosts[dead])
        assert await api.user(f"bench-{dead}-dpko") is None
        assert await api.vhost_exists(vhosts[live])
        assert await api.user(f"bench-{live}-dpko") is not None
        assert await api.vhost_exists(other)
    finally:
        for run, vhost in vhosts.items():
            with contextlib.suppress(Exception):
                await api.delete_user(f"bench-{run}-dpko")
            with contextlib.suppress(Exception):
                await api.delete_vhost(vhost)
        with contextlib.suppress(Exception):
            await api.delete_vhost(other)
        await api.close()
