"""Answer in the ack or follow up: the one rule both chat platforms apply to a command.

Slack and Discord drop a command that is not acknowledged within 3 seconds. The ack can carry the
answer itself, which reads best (one message, at once), but nothing slow may run before it. So a
command whose answer should come quickly starts at once and its answer goes in the ack, unless it
takes longer than `wait`; otherwise the adapter acks first ("working on it", a deferral) and the
call runs after that. An answer should come quickly when one engine call (a moving average) is under
SLOW, and the calls ahead of it (running, or queued for a slot) would hold it up no longer than QUEUE_WAIT: in a burst
every ack would otherwise wait behind the queue, as a bare library's never does (bench/bench_ack.py).
Calls that would wait longer are acked at once, and answered as the engine gets to them.

Engine calls from the platforms run in a few slots (bot/engine.py), so that a burst queues here
instead of starving the acks of CPU.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from bot.messages import INTERNAL_ERROR, Reply

log = logging.getLogger(__name__)

ACK_WAIT = 2.0  # longest wait for the engine before acking without the answer; platforms drop a command after 3 s
SLOW = 0.1  # an engine call expected to take this long or longer is acked first, then answered
QUEUE_WAIT = 0.01  # the longest an ack may wait for the engine calls ahead of its own
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
        self.wait = wait  # seconds an ack may wait for the answer
        self.engine_time = ENGINE_TIME  # seconds the engine takes per call, a moving average (see _count)
        self.in_flight = 0  # engine calls queued or running
        self._finished = -math.inf  # when the last call finished (time.monotonic)
        self._slots = asyncio.Semaphore(slots)
        self._tasks: set[asyncio.Task[Reply]] = set()  # started calls, kept until done

    async def answer(self, call: EngineCall) -> Reply | FollowUp:
        """The reply, when it came within `wait`; otherwise a FollowUp to await once the adapter has acked."""
        if not self._expect_fast():
            return FollowUp(lambda: self.run(call))
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[Reply | None] = loop.create_future()
        task = self._start(call, answered)
        timer = loop.call_later(self.wait, _settle, answered, None)
        try:
            reply = await answered
        finally:
            timer.cancel()
        return reply if reply is not None else FollowUp(lambda: task)

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
                    self._count(started)
        finally:
            self.in_flight -= 1

    def _count(self, started: float) -> None:
        """Fold a finished call into `engine_time`: the time from its start, or from the end of the call before
        it if that came later. One call at a time, that is the call's duration; with several in the slots at
        once, the engine's time per call however it overlaps them, so `in_flight` calls drain in about
        `in_flight * engine_time`."""
        now = time.monotonic()
        self.engine_time = 0.8 * self.engine_time + 0.2 * (now - max(started, self._finished))
        self._finished = now

    def _expect_fast(self) -> bool:
        """Whether the answer should come soon: the call itself is quick, and so is the queue ahead of it."""
        return self.engine_time < SLOW and self.in_flight * self.engine_time <= QUEUE_WAIT

    def _start(self, call: EngineCall, answered: asyncio.Future[Reply | None]) -> asyncio.Task[Reply]:
        """Start the call now; it counts as in flight from here, before its task first runs."""
        self.in_flight += 1
        task = asyncio.create_task(self._answering(call, answered))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _answering(self, call: EngineCall, answered: asyncio.Future[Reply | None]) -> Reply:
        """Run the call, and hand its reply to the ack waiting on `answered` from inside the call's own task: a
        done callback would wake the ack one turn of the event loop later."""
        reply = None
        try:
            reply = await self._in_slot(call)
            return reply
        finally:
            _settle(answered, reply)


def _settle(answered: asyncio.Future[Reply | None], reply: Reply | None) -> None:
    """Wake the ack with the reply, or with None once the wait is over (whichever comes first)."""
    if not answered.done():
        answered.set_result(reply)
