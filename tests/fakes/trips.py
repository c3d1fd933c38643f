"""Trips: hooks that the fakes run on each request they receive, for tests that crash the bot mid-send.

A trip picks requests with a predicate on the fake's recorded call; the `nth` picked request trips it
(`tripped` is set). What then happens to that request and to every later one it picks is its `mode`:
- ANSWER: carried out and answered, as usual;
- STALL: carried out (a post is stored and visible in history), but the HTTP answer is held back until
  `release`: the platform accepted the send, and its answer never reaches the sender;
- HOLD: held before it is carried out, and answered with a 500 on `release` without being carried out:
  the sender died before the platform acted on it.
A `lag` answers every picked request that late, as a busy platform does, so that a kill a few
milliseconds after the trip still finds sends under way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

CallT = TypeVar("CallT")


class Mode(Enum):
    ANSWER = "answer"
    STALL = "stall"
    HOLD = "hold"


@dataclass
class Trip(Generic[CallT]):
    matches: Callable[[CallT], bool]
    nth: int = 1
    mode: Mode = Mode.ANSWER
    lag: float = 0.0  # seconds
    seen: list[CallT] = field(default_factory=list)  # the requests picked so far, in order
    tripped: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def _caught(self) -> bool:
        return len(self.seen) >= self.nth

    async def admit(self, call: CallT) -> bool:
        """Called by the fake before carrying out `call`; False: do not carry it out (answer a 500)."""
        if self.mode is not Mode.HOLD or self.released.is_set() or not self.matches(call):
            return True
        self.seen.append(call)
        if not self._caught():
            return True
        self.tripped.set()
        await self.released.wait()
        return False

    async def passed(self, call: CallT) -> None:
        """Called by the fake after carrying out `call`, before answering it."""
        if self.mode is Mode.HOLD or self.released.is_set() or not self.matches(call):
            return
        self.seen.append(call)
        if self._caught():
            self.tripped.set()
            if self.mode is Mode.STALL:
                await self.released.wait()
        await asyncio.sleep(self.lag)

    def release(self) -> None:
        """Answer the requests held back (to a sender that is gone by now) and pick no more."""
        self.released.set()


class Trips(Generic[CallT]):
    """A fake's trips: `add` one; the fake runs `admit` and `passed` on each call; `clear` releases and removes all."""

    def __init__(self) -> None:
        self._trips: list[Trip[CallT]] = []

    def add(
        self, matches: Callable[[CallT], bool], nth: int = 1, mode: Mode = Mode.ANSWER, lag: float = 0.0
    ) -> Trip[CallT]:
        trip = Trip(matches, nth, mode, lag)
        self._trips.append(trip)
        return trip

    async def admit(self, call: CallT) -> bool:
        return all(await asyncio.gather(*(trip.admit(call) for trip in self._trips)))

    async def passed(self, call: CallT) -> None:
        await asyncio.gather(*(trip.passed(call) for trip in self._trips))

    def clear(self) -> None:
        for trip in self._trips:
            trip.release()
        self._trips.clear()
