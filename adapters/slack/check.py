"""`emcee check --online` for Slack: the token (auth.test) and each announce channel (conversations.info)."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.adapter import HINTS
from bot.config import Secrets, SlackSettings
from bot.ports import OnlineCheck


async def check_online(settings: SlackSettings, secrets: Secrets) -> OnlineCheck:
    report = OnlineCheck("slack")
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(token=secrets.slack_bot_token, base_url=settings.api_base_url, session=session)
        try:
            auth = await client.auth_test()
        except SlackApiError as exc:
            report.problems.append(f"slack: Slack rejected SLACK_BOT_TOKEN: {exc.response.get('error')}")
            return report
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            report.problems.append(f"slack: cannot reach Slack at {settings.api_base_url}: {exc}")
            return report
        bot = str(auth.get("user"))
        report.facts.append(f"signed in as {bot} in {auth.get('team')}")
        for channel in settings.announce_channels:
            problem = await _channel_problem(client, channel, bot)
            if problem:
                report.problems.append(f"slack channel {channel}: {problem}")
            else:
                report.facts.append(f"can post in {channel}")
    return report


async def _channel_problem(client: AsyncWebClient, channel: str, bot: str) -> str | None:
    """Why the bot cannot post in `channel`, with the fix; None when it can."""
    try:
        info = await client.conversations_info(channel=channel)
    except SlackApiError as exc:
        error = str(exc.response.get("error"))
        hint = HINTS.get(error)
        return f"{error}; {hint.format(bot=bot, channel=channel)}" if hint else error
    if not info["channel"].get("is_member"):
        return "the bot is not a member; " + HINTS["not_in_channel"].format(bot=bot, channel=channel)
    return None
