"""The ack budget (bot/answering.py): which answers travel in the ack, and how it learns the engine's pace."""

from __future__ import annotations

import asyncio

from bot.answering import QUEUE_WAIT, AckBudget, FollowUp
from bot.engine import Engine
from bot.messages import Reply

QUICK = 0.004  # an engine call as quick as an RSVP on SQLite


async def quick() -> Reply:
    return Reply("done")


async def test_a_lone_quick_command_is_answered_in_the_ack() -> None:
    budget = AckBudget(slots=1)
    budget.engine_time = QUICK

    assert await budget.answer(quick) == Reply("done")


async def test_a_command_behind_a_queue_is_acked_first_even_when_the_engine_is_quick() -> None:
    """In a burst, waiting behind the calls ahead would hold the ack back longer than QUEUE_WAIT: the command is
    acked at once, and starts only when the adapter asks for its answer after the ack."""
    budget = AckBudget(slots=1, wait=0.2)
    budget.engine_time = QUICK
    ahead = int(QUEUE_WAIT / QUICK) + 1
    gate = asyncio.Event()

    async def held() -> Reply:
        await gate.wait()
        return Reply("held")

    queue = [asyncio.create_task(budget.run(held)) for _ in range(ahead)]
    await asyncio.sleep(0)
    started: list[str] = []

    async def recorded() -> Reply:
        started.append("call")
        return Reply("done")

    answer = await budget.answer(recorded)

    assert isinstance(answer, FollowUp)
    assert budget.in_flight == ahead  # not started before the ack
    gate.set()
    assert await answer.reply() == Reply("done")
    assert started == ["call"]
    await asyncio.gather(*queue)


async def test_calls_the_engine_runs_side_by_side_count_as_its_time_per_call() -> None:
    """Eight calls of 50 ms that overlap take the engine about 6 ms each: the queue ahead of a new call drains at
    that pace, not at 50 ms a call."""
    budget = AckBudget(slots=8)

    async def overlapping() -> Reply:
        await asyncio.sleep(0.05)
        return Reply("done")

    await asyncio.gather(*(budget.run(overlapping) for _ in range(8)))

    assert budget.engine_time < 0.02


async def test_engine_calls_from_the_platforms_overlap_on_either_database(engine: Engine) -> None:
    """Several calls are in the database layer's hands at once, so that it can overlap or batch them."""
    gate = asyncio.Event()
    running: list[int] = []

    async def held() -> Reply:
        running.append(1)
        await gate.wait()
        return Reply("held")

    calls = [asyncio.create_task(engine.acks.run(held)) for _ in range(4)]
    await asyncio.sleep(0.01)

    assert len(running) == 4
    gate.set()
    await asyncio.gather(*calls)
