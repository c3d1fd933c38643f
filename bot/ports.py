"""The Adapter protocol: what the core needs from a chat platform, and the errors adapters report.

It lives in the core so the publisher and scheduler can type against it without importing any
adapter; the adapters import it from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from bot.invocation import Actor, ChannelRef, MessageRef
from bot.messages import Message

if TYPE_CHECKING:
    from bot.engine import Engine


class PlatformUnreachable(Exception):
    """start() could not reach the platform over the network (DNS, refused, timed out): worth retrying,
    unlike a rejected token. str() names the platform and the address."""


class SendError(Exception):
    """A send, edit or DM failed after the platform library's own retries.

    `permanent`: retrying cannot help (a missing channel or permission), so the outbox does not.
    `retry_after`: seconds the platform asked to wait (still rate limited); the outbox waits that long.
    """

    def __init__(self, detail: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass
class OnlineCheck:
    """What `emcee check --online` learned of one platform: what works, and each problem with its fix."""

    platform: str
    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Adapter(Protocol):
    platform: str

    async def start(self, engine: Engine) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, target: ChannelRef, message: Message, key: str = "") -> MessageRef:
        """Post `message`. `key` is the ledger's post key, the same on every retry of one post: an adapter
        may use it to make a retried send idempotent (Discord's nonce)."""
        ...

    async def edit(self, ref: MessageRef, message: Message) -> None: ...

    async def send_dm(self, user: Actor, message: Message, key: str = "") -> MessageRef: ...

    async def find_sent(self, target: ChannelRef | Actor, key: str, since: datetime) -> MessageRef | None:
        """The message an earlier attempt sent under post `key` to a channel or a member's DMs (`since`, on
        the system clock, is when that attempt began), or None if it cannot be found. The outbox asks before
        re-sending a post whose sender died mid-send; an adapter that cannot look returns None."""
        ...

    @property
    def connected(self) -> bool:
        """Whether the platform connection is up, for /healthz."""
        ...
