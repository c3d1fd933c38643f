"""Trips: hooks that the fakes run on each request they receive, for tests that crash the bot mid-send.

A trip picks requests with a predicate on the fake's recorded call. The `nth` picked request trips it
(`tripped` is set) once the fake has carried the request out (a post is stored and visible in
history). A stalling trip then holds back the HTTP answer of that request and of every later one it
picks, until `release`: the platform accepted the send, but its answer never reaches the sender.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

CallT = TypeVar("CallT")


@dataclass
class Trip(Generic[CallT]):
    matches: Callable[[CallT], bool]
    nth: int = 1
    stall: bool = False
    seen: list[CallT] = field(default_factory=list)  # the requests picked so far, in order
    tripped: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def passed(self, call: CallT) -> None:
        """Called by the fake after carrying out `call`, before answering it."""
        if self.released.is_set() or not self.matches(call):
            return
        self.seen.append(call)
        if len(self.seen) < self.nth:
            return
        self.tripped.set()
        if self.stall:
            await self.released.wait()

    def release(self) -> None:
        """Answer the stalled requests (to a sender that is gone by now) and pick no more."""
        self.released.set()


class Trips(Generic[CallT]):
    """A fake's trips: `add` one, `run` them on each call, `clear` releases and removes them all."""

    def __init__(self) -> None:
        self._trips: list[Trip[CallT]] = []

    def add(self, matches: Callable[[CallT], bool], nth: int = 1, stall: bool = False) -> Trip[CallT]:
        trip = Trip(matches, nth, stall)
        self._trips.append(trip)
        return trip

    async def run(self, call: CallT) -> None:
        await asyncio.gather(*(trip.passed(call) for trip in self._trips))

    def clear(self) -> None:
        for trip in self._trips:
            trip.release()
        self._trips.clear()
