"""What SIGUSR1 makes a service log: each pending task's name and where it waits."""

import asyncio

from liaison.common.serve import task_stacks


async def test_task_stacks_name_each_task_and_where_it_waits() -> None:
    """A task blocked on an event shows up by name, suspended in the coroutine that awaits it."""
    stuck = asyncio.Event()

    async def waits_for_commit() -> None:
        await stuck.wait()

    task = asyncio.create_task(waits_for_commit(), name="hub-commits")
    await asyncio.sleep(0)
    try:
        stacks = task_stacks(asyncio.get_running_loop())
        (name,) = [n for n in stacks if n.startswith("hub-commits#")]
        assert "waits_for_commit" in stacks[name]
    finally:
        task.cancel()


async def test_task_stacks_follow_the_await_chain_to_the_innermost_wait() -> None:
    """A task suspended several coroutines deep shows each of them, down to the future the
    innermost one awaits, not only its outermost coroutine."""
    stuck: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def inner_commit() -> None:
        await stuck

    async def outer_handler() -> None:
        await inner_commit()

    task = asyncio.create_task(outer_handler(), name="hub-handler")
    await asyncio.sleep(0)
    try:
        stacks = task_stacks(asyncio.get_running_loop())
        (name,) = [n for n in stacks if n.startswith("hub-handler#")]
        lines = stacks[name].splitlines()
        assert "outer_handler" in lines[0]
        assert "inner_commit" in lines[1]
        assert lines[-1].startswith("awaits <Future pending")
    finally:
        task.cancel()
