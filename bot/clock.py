"""Time as the core sees it: always aware, always UTC, and replaceable in tests and the demo.

A clock also tells timers when to fire: `system_time` maps one of its moments to the system clock's
reading at which the clock will show it (APScheduler waits on the system clock).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, UTC-aware."""
        ...

    def system_time(self, moment: datetime) -> datetime:
        """When, on the system clock, this clock will read `moment`: when a timer for `moment` fires."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def system_time(self, moment: datetime) -> datetime:
        return moment


class FakeClock:
    """A clock that moves only when a test moves it. Timers fire as if it kept pace with the system's from now."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def system_time(self, moment: datetime) -> datetime:
        return datetime.now(UTC) + (moment - self._now)

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)


class FastClock:
    """A clock that starts at `start` and runs `speed` times as fast as the system's (the demo's evening).

    Timers set before a change of speed fire at the old pace: set them again (restart the runner).
    """

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if start.tzinfo is None:
            raise ValueError("FastClock needs an aware datetime")
        self._anchor, self._since, self.speed = start.astimezone(UTC), datetime.now(UTC), speed

    def now(self) -> datetime:
        return self._anchor + (datetime.now(UTC) - self._since) * self.speed

    def system_time(self, moment: datetime) -> datetime:
        return self._since + (moment - self._anchor) / self.speed

    def set_speed(self, speed: float) -> None:
        """Run `speed` times as fast as the system's clock from now on."""
        since = datetime.now(UTC)
        self._anchor, self._since, self.speed = self._anchor + (since - self._since) * self.speed, since, speed
