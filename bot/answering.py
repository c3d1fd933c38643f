"""Answer in the ack or follow up: the one rule both chat platforms apply to a command.

Slack and Discord drop a command that is not acknowledged within 3 seconds. The ack can carry the
answer itself, which reads best, but nothing slow may run before it. So, when the engine should
answer quickly (the calls ahead of this one, at a moving average of one call each, fit in
FAST_ENOUGH), the call starts at once and its answer goes in the ack, unless it takes longer than
`wait`. Otherwise (a burst queueing on SQLite) the adapter acks first ("working on it", a deferral)
and the call runs after that, so that no ack waits behind the queue (bench/bench_ack.py).

Engine calls from the platforms run in a few slots: one on SQLite, which has one writer, so that
more would only contend and starve the acks of CPU.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.messages import INTERNAL_ERROR, Reply

log = logging.getLogger(__name__)

ACK_WAIT = 2.0  # longest wait for the engine before acking without the answer; platforms drop a command after 3 s
FAST_ENOUGH = 0.1  # expected wait below which waiting for the answer beats acking first
ENGINE_TIME = 0.01  # a first guess at one engine call: an RSVP on SQLite (bench/bench_rsvp.py)

EngineCall = Callable[[], Awaitable[Reply]]


class FollowUp:
    """An answer that comes after the ack: the adapter acks first, then awaits `reply()`. A call that has
    not started yet starts only then, so that a dropped FollowUp (the ack failed) never runs it."""

    def __init__(self, reply: EngineCall) -> None:
        self._reply = reply

    async def reply(self) -> Reply:
        return await self._reply()


class AckBudget:
    """Decides, per command, whether its answer can travel in the ack; runs the engine calls in slots."""

    def __init__(self, slots: int, wait: float = ACK_WAIT) -> None:
        self.slots = slots
        self.wait = wait  # seconds an ack may wait for the answer
        self.engine_time = ENGINE_TIME  # moving average of one engine call, in seconds
        self.in_flight = 0  # engine calls queued or running
        self._slots = asyncio.Semaphore(slots)
        self._tasks: set[asyncio.Task[Reply]] = set()  # started calls, kept until done

    async def answer(self, call: EngineCall) -> Reply | FollowUp:
        """The reply, when it came within `wait`; otherwise a FollowUp to await once the adapter has acked."""
        if not self._expect_fast():
            return FollowUp(lambda: self.run(call))
        task = self._start(call)
        done, _ = await asyncio.wait({task}, timeout=self.wait)
        return task.result() if done else FollowUp(lambda: task)

    async def run(self, call: EngineCall) -> Reply:
        """An engine call after the ack (a button click, a follow-up), in a slot."""
        self.in_flight += 1
        return await self._in_slot(call)

    async def _in_slot(self, call: EngineCall) -> Reply:
        """Run a call counted in `in_flight`, and count it out when done. It never raises: the engine answers
        every failure itself, so one that escapes is a bug, but the member still hears back."""
        try:
            async with self._slots:
                started = time.monotonic()
                try:
                    return await call()
                except Exception:
                    log.exception("a command from a chat platform failed")
                    return INTERNAL_ERROR
                finally:
                    self.engine_time = 0.8 * self.engine_time + 0.2 * (time.monotonic() - started)
        finally:
            self.in_flight -= 1

    def _expect_fast(self) -> bool:
        """Whether the answer should come soon: the calls ahead each take about `engine_time`, `slots` at a time."""
        return (self.in_flight // self.slots + 1) * self.engine_time < FAST_ENOUGH

    def _start(self, call: EngineCall) -> asyncio.Task[Reply]:
        """Start the call now; it counts as in flight from here, before its task first runs."""
        self.in_flight += 1
        task = asyncio.create_task(self._in_slot(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
