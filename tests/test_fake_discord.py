"""Self-tests: a real discord.Client logs in and runs against the Discord fake."""

from __future__ import annotations

import asyncio
import io
import json
import re
import zlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from fakes.discord import (
    APPLICATION_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    CHANNEL_ID,
    GUILD_ID,
    MEMBER_USER_ID,
    ORGANIZER_ROLE_ID,
    ORGANIZER_USER_ID,
    FakeDiscord,
    click_payload,
    interaction_payload,
    load_payload,
    patch_discord_py,
)

GUILD = discord.Object(GUILD_ID)
RSVP_TEMPLATE = r"emcee:rsvp:(?P<event>[a-z0-9-]+):(?P<choice>going|maybe|no)"


class RsvpButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=RSVP_TEMPLATE):
    """The persistent RSVP button as the design describes it: the custom_id holds event and choice."""

    clicks: ClassVar[list[tuple[str, str, int]]] = []

    def __init__(self, event: str, choice: str) -> None:
        super().__init__(discord.ui.Button(label=choice, custom_id=f"emcee:rsvp:{event}:{choice}"))
        self.event, self.choice = event, choice

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RsvpButton:
        return cls(match["event"], match["choice"])

    async def callback(self, interaction: discord.Interaction) -> None:
        self.clicks.append((self.event, self.choice, interaction.user.id))
        if self.choice == "going":  # a new ephemeral message: callback type 4
            await interaction.response.send_message(f"{self.choice} for {self.event}", ephemeral=True)
        elif self.choice == "maybe":  # acknowledge, then edit the card: type 6 and PATCH @original
            await interaction.response.defer()
            await interaction.edit_original_response(content="1 maybe")
        else:  # edit the card in the response itself: type 7
            await interaction.response.edit_message(content="1 can't go")


def build_client() -> tuple[discord.Client, app_commands.CommandTree[discord.Client]]:
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    tree = app_commands.CommandTree(client)

    @tree.command(name="ping", description="Check the bot", guild=GUILD)
    async def ping(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pong", ephemeral=True)

    @tree.command(name="rsvp", description="RSVP to an event", guild=GUILD)
    @app_commands.choices(status=[app_commands.Choice(name=s, value=s) for s in ("going", "maybe", "no")])
    async def rsvp(interaction: discord.Interaction, event: str, status: str, guests: int = 0) -> None:
        await interaction.response.send_message(f"{event}|{status}|{guests}|{interaction.user.id}", ephemeral=True)

    @rsvp.autocomplete("event")
    async def rsvp_event(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=f"{current} June", value="bk-june")]

    emcee = app_commands.Group(name="emcee", description="Organizer commands", guild_ids=[GUILD_ID])
    agenda = app_commands.Group(name="agenda", description="Edit the agenda", parent=emcee)

    @agenda.command(name="shift", description="Shift the current and later items")
    async def shift(interaction: discord.Interaction, by: str) -> None:
        roles = [role.id for role in interaction.user.roles]  # type: ignore[union-attr]
        await interaction.response.defer(thinking=True)
        await interaction.followup.send(f"shifted {by}; organizer={ORGANIZER_ROLE_ID in roles}")
        await interaction.edit_original_response(content="agenda updated")

    tree.add_command(emcee)
    client.add_dynamic_items(RsvpButton)
    return client, tree


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        with patch_discord_py(fake):
            yield fake


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[tuple[discord.Client, app_commands.CommandTree[discord.Client]]]:
    client, tree = build_client()
    async with fake.run_client(client):
        yield client, tree


def callback_path(payload: dict[str, Any]) -> str:
    return rf"/interactions/{payload['id']}/{re.escape(payload['token'])}/callback"


async def test_payload_ids_match_the_fake(fake: FakeDiscord) -> None:
    assert (fake.application_id, fake.bot_user_id, fake.guild_id, fake.channel_id) == (
        APPLICATION_ID,
        BOT_USER_ID,
        GUILD_ID,
        CHANNEL_ID,
    )
    for name in ("command_rsvp", "command_emcee_agenda_shift", "autocomplete_rsvp_event", "button_rsvp"):
        payload = load_payload(name)
        assert (int(payload["application_id"]), int(payload["guild_id"]), int(payload["channel_id"])) == (
            APPLICATION_ID,
            GUILD_ID,
            CHANNEL_ID,
        )
    first, second = interaction_payload("command_rsvp"), interaction_payload("command_rsvp")
    assert first["id"] != second["id"] and first["token"] != second["token"]
    assert interaction_payload("command_rsvp", data={"name": "ping"})["data"]["options"][0]["name"] == "event"
    assert int(load_payload("command_emcee_agenda_shift")["member"]["user"]["id"]) == ORGANIZER_USER_ID


async def test_client_logs_in_and_gets_ready(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    client, _ = bot
    assert client.user is not None and client.user.id == BOT_USER_ID
    fetched = await client.fetch_channel(CHANNEL_ID)
    assert isinstance(fetched, discord.TextChannel) and fetched.name == "meetups"
    with pytest.raises(discord.NotFound):
        await client.fetch_channel(42)
    assert client.application_id == APPLICATION_ID
    guild = client.get_guild(GUILD_ID)
    assert guild is not None and guild.get_role(ORGANIZER_ROLE_ID) is not None
    assert isinstance(client.get_channel(CHANNEL_ID), discord.TextChannel)
    assert [c.path for c in fake.calls[:2]] == ["/users/@me", "/oauth2/applications/@me"]
    assert fake.calls[0].headers["Authorization"] == f"Bot {BOT_TOKEN}"
    assert fake.gateway_queries == [{"v": "10", "encoding": "json", "compress": "zlib-stream"}]
    identify = next(frame for frame in fake.gateway_frames if frame["op"] == 2)
    assert identify["d"]["intents"] == discord.Intents.default().value
    assert any(frame["op"] == 1 for frame in fake.gateway_frames)  # heartbeat, ACKed with op 11


async def test_sync_records_bulk_overwrite(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    _, tree = bot
    synced = await tree.sync(guild=GUILD)
    call = await fake.wait_for_call("PUT", rf"/applications/{APPLICATION_ID}/guilds/{GUILD_ID}/commands")
    assert sorted(command["name"] for command in call.json) == ["emcee", "ping", "rsvp"]
    assert {command.name: command.id for command in synced} == {
        command["name"]: int(command["id"]) for command in fake.commands[GUILD_ID]
    }
    again = await tree.sync(guild=GUILD)
    assert {command.id for command in again} == {command.id for command in synced}  # ids survive an overwrite
    assert await tree.sync() == [] and fake.commands[None] == []  # no global commands
    with pytest.raises(discord.NotFound) as unknown:
        await tree.sync(guild=discord.Object(42))
    assert unknown.value.code == 10004


async def test_ping_interaction_answers_ephemerally(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    payload = interaction_payload("command_rsvp", data={"name": "ping", "options": []})
    await fake.dispatch("INTERACTION_CREATE", payload)
    call = await fake.wait_for_call("POST", callback_path(payload))
    assert call.json["type"] == 4
    assert call.json["data"]["content"] == "pong"
    assert call.json["data"]["flags"] == 64
    assert call.query == {"with_response": "1"} and call.status == 200
    original = fake.interactions[int(payload["id"])].original
    assert original is not None and original["flags"] == 64
    assert fake.messages(CHANNEL_ID) == []  # ephemeral answers are not in the channel


async def test_recorded_command_payloads_parse(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    rsvp = interaction_payload("command_rsvp")
    await fake.dispatch("INTERACTION_CREATE", rsvp)
    assert (await fake.wait_for_call("POST", callback_path(rsvp))).json["data"]["content"] == (
        f"bk-june|going|2|{MEMBER_USER_ID}"
    )

    complete = interaction_payload("autocomplete_rsvp_event")
    await fake.dispatch("INTERACTION_CREATE", complete)
    answer = (await fake.wait_for_call("POST", callback_path(complete))).json
    assert answer == {"type": 8, "data": {"choices": [{"name": "book June", "value": "bk-june"}]}}

    shift = interaction_payload("command_emcee_agenda_shift")
    await fake.dispatch("INTERACTION_CREATE", shift)
    defer = await fake.wait_for_call("POST", callback_path(shift))
    assert defer.json["type"] == 5
    token = re.escape(shift["token"])
    followup = await fake.wait_for_call("POST", rf"/webhooks/{APPLICATION_ID}/{token}")
    assert followup.json["content"] == "shifted +10m; organizer=True" and followup.query["wait"] == "1"
    await fake.wait_for_call("PATCH", rf"/webhooks/{APPLICATION_ID}/{token}/messages/@original")
    interaction = fake.interactions[int(shift["id"])]
    assert interaction.original is not None and interaction.original["content"] == "agenda updated"
    assert [m["content"] for m in fake.messages(CHANNEL_ID)] == ["agenda updated", "shifted +10m; organizer=True"]


async def test_button_click_reaches_dynamic_item(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    RsvpButton.clicks.clear()
    payload = interaction_payload("button_rsvp")
    await fake.dispatch("INTERACTION_CREATE", payload)
    call = await fake.wait_for_call("POST", callback_path(payload))
    assert (call.json["type"], call.json["data"]["content"], call.json["data"]["flags"]) == (4, "going for bk-june", 64)
    assert RsvpButton.clicks == [("bk-june", "going", MEMBER_USER_ID)]


async def test_click_on_a_posted_card(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    client, _ = bot
    RsvpButton.clicks.clear()
    view = discord.ui.View(timeout=None)
    view.add_item(RsvpButton("bk-june", "maybe"))
    channel = client.get_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    await channel.send("Apache BookKeeper meetup", view=view)
    card = fake.messages(CHANNEL_ID)[-1]
    with pytest.raises(ValueError):
        click_payload(card, "emcee:rsvp:bk-june:going")
    payload = click_payload(card, "emcee:rsvp:bk-june:maybe")
    await fake.dispatch("INTERACTION_CREATE", payload)
    assert (await fake.wait_for_call("POST", callback_path(payload))).json == {"type": 6}
    await fake.wait_for_call("PATCH", rf"/webhooks/{APPLICATION_ID}/[^/]+/messages/@original")
    assert RsvpButton.clicks == [("bk-june", "maybe", MEMBER_USER_ID)]
    assert [m["content"] for m in fake.messages(CHANNEL_ID)] == ["1 maybe"]  # the card itself was edited


async def test_update_message_on_a_recorded_card(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    payload = interaction_payload("button_rsvp", data={"custom_id": "emcee:rsvp:bk-june:no"})
    await fake.dispatch("INTERACTION_CREATE", payload)
    call = await fake.wait_for_call("POST", callback_path(payload))
    assert (call.json["type"], call.json["data"]["content"]) == (7, "1 can't go")
    [card] = fake.messages(CHANNEL_ID)  # the recorded card, now edited
    assert card["id"] == payload["message"]["id"] and card["content"] == "1 can't go"
    assert card["embeds"] == payload["message"]["embeds"]  # untouched by an edit that does not name them


async def test_added_channels(fake: FakeDiscord) -> None:
    before = fake.add_channel("speakers", topic="Talks and bios")
    client, _ = build_client()
    async with fake.run_client(client):
        assert isinstance(client.get_channel(before), discord.TextChannel)  # in GUILD_CREATE
        after = fake.add_channel("after-party")
        created = asyncio.ensure_future(client.wait_for("guild_channel_create"))
        await fake.dispatch("CHANNEL_CREATE", fake.channel(after))
        assert (await asyncio.wait_for(created, 2)).id == after
        await client.get_channel(after).send("See you there")  # type: ignore[union-attr]
    assert [m["content"] for m in fake.messages(after)] == ["See you there"]


async def test_send_and_edit_a_channel_message(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    client, _ = bot
    channel = client.get_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send(
        "Doors open at 6", embed=discord.Embed(title="BookKeeper June"), nonce="evt-1:announce"
    )
    call = await fake.wait_for_call("POST", rf"/channels/{CHANNEL_ID}/messages")
    assert call.json["content"] == "Doors open at 6" and call.json["enforce_nonce"] is True
    assert call.json["embeds"][0]["title"] == "BookKeeper June"
    assert message.content == "Doors open at 6" and message.nonce == "evt-1:announce"
    edited = await message.edit(content="Doors open at 6:30")
    assert edited.edited_at is not None
    assert (
        fake.calls_to("PATCH", rf"/channels/{CHANNEL_ID}/messages/{message.id}")[0].json["content"]
        == "Doors open at 6:30"
    )
    assert [m["content"] for m in fake.messages(CHANNEL_ID)] == ["Doors open at 6:30"]


async def test_enforce_nonce_returns_the_original(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    client, _ = bot
    channel = client.get_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("Reminder: tomorrow", nonce="reminder-1d")
    second = await channel.send("Reminder: tomorrow", nonce="reminder-1d")
    assert first.id == second.id and len(fake.messages(CHANNEL_ID)) == 1
    dm = await client.create_dm(discord.Object(MEMBER_USER_ID))
    elsewhere = await dm.send("Reminder: tomorrow", nonce="reminder-1d")
    assert elsewhere.id == first.id  # Discord dedupes per author, not per channel: key nonces by target too
    fake.nonce_window = 0.0
    third = await channel.send("Reminder: tomorrow", nonce="reminder-1d")
    assert third.id != first.id


async def test_429_is_retried_and_posts_once(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    client, _ = bot
    channel = client.get_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    fake.rate_limit_next("POST", r"/channels/\d+/messages", retry_after=0.1)
    message = await channel.send("after the limit")
    posts = fake.calls_to("POST", rf"/channels/{CHANNEL_ID}/messages")
    assert [call.status for call in posts] == [429, 200]
    assert [m["id"] for m in fake.messages(CHANNEL_ID)] == [str(message.id)]


async def test_channel_faults_raise(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    client, _ = bot
    channel = client.get_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    fake.fail_channel(CHANNEL_ID)
    with pytest.raises(discord.Forbidden) as forbidden:
        await channel.send("nope")
    assert (forbidden.value.status, forbidden.value.code, forbidden.value.text) == (403, 50013, "Missing Permissions")
    fake.fail_channel(CHANNEL_ID, status=404, code=10003, message="Unknown Channel")
    with pytest.raises(discord.NotFound) as missing:
        await channel.send("nope")
    assert missing.value.code == 10003
    fake.restore_channel(CHANNEL_ID)
    await channel.send("back")
    assert [m["content"] for m in fake.messages(CHANNEL_ID)] == ["back"]


async def test_message_limits_are_enforced(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    client, _ = bot
    channel = client.get_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as too_long:
        await channel.send("x" * 2001)
    assert too_long.value.code == 50035 and "content" in too_long.value.text
    with pytest.raises(discord.HTTPException) as big_embed:
        await channel.send(embeds=[discord.Embed(description="y" * 4000) for _ in range(2)])
    assert "Embed size exceeds maximum size of 6000" in big_embed.value.text
    with pytest.raises(discord.HTTPException) as long_nonce:
        await channel.send("hi", nonce="n" * 26)
    assert "nonce" in long_nonce.value.text
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label="Going", custom_id="emcee:rsvp:" + "e" * 100 + ":going"))
    with pytest.raises(discord.HTTPException) as long_custom_id:
        await channel.send("card", view=view)
    assert "custom_id" in long_custom_id.value.text
    with pytest.raises(discord.HTTPException) as empty:
        await channel.send()
    assert (empty.value.status, empty.value.code) == (400, 50006)
    assert fake.messages(CHANNEL_ID) == []


async def test_file_upload_and_dm(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    client, _ = bot
    dm = await client.create_dm(discord.Object(MEMBER_USER_ID))
    assert dm.id == fake.dm_channel_id(MEMBER_USER_ID)
    assert (await client.create_dm(discord.Object(MEMBER_USER_ID))).id == dm.id
    message = await dm.send("You're off the waitlist", file=discord.File(io.BytesIO(b"name\nGrace\n"), "attendees.csv"))
    call = fake.calls_to("POST", rf"/channels/{dm.id}/messages")[0]
    assert call.json["content"] == "You're off the waitlist"
    assert [(f.filename, f.data) for f in call.files] == [("attendees.csv", b"name\nGrace\n")]
    assert message.attachments[0].filename == "attendees.csv" and message.attachments[0].size == 11
    stranger = await client.create_dm(discord.Object(777))
    assert stranger.recipient is not None and stranger.recipient.name == "user777"
    fake.fail_channel(dm.id, 403, 50007, "Cannot send messages to this user")
    with pytest.raises(discord.Forbidden) as blocked:
        await dm.send("again")
    assert blocked.value.code == 50007


async def test_callback_rules(fake: FakeDiscord) -> None:
    async def callback(payload: dict[str, Any], kind: int = 4) -> tuple[int, Any]:
        url = f"{fake.api_base_url}/interactions/{payload['id']}/{payload['token']}/callback"
        body = {"type": kind, "data": {"content": "again"}}
        async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
            return response.status, await response.json()

    client, tree = build_client()
    failures: asyncio.Queue[app_commands.AppCommandError] = asyncio.Queue()

    @tree.error
    async def on_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        failures.put_nowait(error)

    async with fake.run_client(client):
        answered = interaction_payload("command_rsvp")
        await fake.dispatch("INTERACTION_CREATE", answered)
        await fake.wait_for_call("POST", callback_path(answered))  # the tree's answer
        already = {"message": "Interaction has already been acknowledged.", "code": 40060}
        assert await callback(answered) == (400, already)
        unknown = {"message": "Unknown interaction", "code": 10062}
        assert await callback(interaction_payload("command_rsvp")) == (404, unknown)

        original = f"{fake.api_base_url}/webhooks/{APPLICATION_ID}/{answered['token']}/messages/@original"
        async with aiohttp.ClientSession() as session, session.get(original) as response:
            assert (await response.json())["content"].startswith("bk-june|going|2|")
        assert (await callback(answered, kind=6))[0] == 400  # DEFERRED_UPDATE_MESSAGE needs a component

        fake.interaction_deadline = 0.0  # Discord's is 3 s; after it the interaction is unknown
        late = interaction_payload("command_rsvp")
        await fake.dispatch("INTERACTION_CREATE", late)
        error = await asyncio.wait_for(failures.get(), 2)
        assert isinstance(error.__cause__, discord.NotFound) and error.__cause__.code == 10062
        assert fake.interactions[int(late["id"])].callback is None


async def test_raw_http_traps(fake: FakeDiscord) -> None:
    auth = {"Authorization": f"Bot {BOT_TOKEN}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.api_base_url}/users/@me", headers=auth) as response:
            assert response.headers["Content-Type"] == "application/json"
            assert (await response.json())["id"] == str(BOT_USER_ID)
        async with session.get(f"{fake.api_base_url}/guilds/1/nothing", headers=auth) as response:
            assert response.status == 404
            assert await response.json() == {"message": "404: Not Found", "code": 0}
        async with session.get(f"{fake.api_base_url}/users/@me", headers={"Authorization": "Bot wrong"}) as response:
            assert (response.status, await response.json()) == (401, {"message": "401: Unauthorized", "code": 0})
        fake.rate_limit_next("GET", "/users/@me", retry_after=0.25)
        async with session.get(f"{fake.api_base_url}/users/@me", headers=auth) as response:
            assert response.status == 429 and response.headers["Via"] == "1.1 google"
            assert response.headers["X-RateLimit-Reset-After"] == "0.250"
            assert (await response.json())["retry_after"] == 0.25
        async with session.get(f"{fake.api_base_url}/gateway") as response:
            assert (await response.json()) == {"url": fake.gateway_url}


async def test_gateway_zlib_stream_and_bad_token(fake: FakeDiscord) -> None:
    url = yarl.URL(fake.gateway_url).with_query(v=10, encoding="json", compress="zlib-stream")
    inflate = zlib.decompressobj()
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        hello = await ws.receive()
        assert hello.type is aiohttp.WSMsgType.BINARY and hello.data.endswith(b"\x00\x00\xff\xff")
        assert json.loads(inflate.decompress(hello.data)) == {
            "op": 10,
            "d": {"heartbeat_interval": 41250},
            "s": None,
            "t": None,
        }
        await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 0, "properties": {}}})
        closed = await ws.receive()
        assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 4004


async def test_reconnect_resumes_the_session(fake: FakeDiscord, bot: tuple[discord.Client, Any]) -> None:
    client, _ = bot
    resumed = asyncio.Event()

    @client.event
    async def on_resumed() -> None:
        resumed.set()

    await fake.request_reconnect()
    await fake.wait_ready()
    await asyncio.wait_for(resumed.wait(), 2)
    resume = next(frame for frame in fake.gateway_frames if frame["op"] == 6)
    assert resume["d"]["seq"] == 2  # READY and GUILD_CREATE
    payload = interaction_payload("command_rsvp", data={"name": "ping", "options": []})
    await fake.dispatch("INTERACTION_CREATE", payload)
    assert (await fake.wait_for_call("POST", callback_path(payload))).json["data"]["content"] == "pong"


async def test_auto_sharded_client_uses_gateway_bot(fake: FakeDiscord) -> None:
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL("ws://127.0.0.1:9/")  # never dialled
    client = discord.AutoShardedClient(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    async with fake.run_client(client):
        assert client.shard_count == 1 and client.get_guild(GUILD_ID) is not None
    assert fake.calls_to("GET", "/gateway/bot")
    identify = next(frame for frame in fake.gateway_frames if frame["op"] == 2)
    assert identify["d"]["shard"] == [0, 1]


async def test_run_client_raises_a_login_failure(fake: FakeDiscord) -> None:
    client, _ = build_client()
    with pytest.raises(discord.LoginFailure):
        async with fake.run_client(client, token="revoked-token"):
            pass
    assert fake.calls[-1].status == 401


async def test_run_client_times_out_before_ready(fake: FakeDiscord) -> None:
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=30)  # on_ready 30 s late
    with pytest.raises(TimeoutError):
        async with fake.run_client(client, timeout=0.3):
            pass
    assert client.is_closed()
