"""`oms tail SUBJECT`: a live NATS stream as JSON lines, e.g. a compliance officer's feed."""
from __future__ import annotations

import asyncio
import json
import sys

import msgspec
import nats
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError


def readable(data: bytes, content_type: str | None) -> object:
    """The payload as plain data, whichever encoding the publisher used."""
    if content_type == "application/json":
        return json.loads(data)
    try:
        return msgspec.msgpack.decode(data)
    except msgspec.DecodeError:
        return data.decode(errors="replace")


async def _tail(servers: list[str], subject: str, auth: dict[str, str], replay: bool, count: int) -> int:
    nc = await nats.connect(servers, **auth, connect_timeout=3)
    seen = 0
    done = asyncio.Event()

    async def show(msg) -> None:
        nonlocal seen
        headers = msg.headers or {}
        line = {"subject": msg.subject, "type": headers.get("Oms-Type"),
                "data": readable(msg.data, headers.get("Content-Type"))}
        print(json.dumps(line, default=str), flush=True)
        seen += 1
        if count and seen >= count:
            done.set()

    if replay:
        js = nc.jetstream()
        try:
            await js.find_stream_name_by_subject(subject)
        except NotFoundError:
            kept = sorted({s for info in await js.streams_info() for s in info.config.subjects or ()})
            await nc.close()
            print(f"oms tail: {subject} is not kept in a JetStream stream, so there is nothing to replay (positions, "
                  f"prices and market data are live only: tail them without --replay); subjects that can be "
                  f"replayed: {', '.join(kept) or 'none'}", file=sys.stderr)
            return 2
        await js.subscribe(subject, cb=show, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    else:
        await nc.subscribe(subject, cb=show)
    try:
        await done.wait()
    finally:
        await nc.close()
    return 0


def tail(servers: list[str], subject: str, auth: dict[str, str], *, replay: bool = False, count: int = 0) -> int:
    """auth: nats.connect credentials (user/password or nkeys_seed), as `NatsConfig.auth` gives them."""
    try:
        return asyncio.run(_tail(servers, subject, auth, replay, count))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # no server, bad subject: one line, non-zero exit
        print(f"oms tail: {exc}", file=sys.stderr)
        return 1
