#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Distance for bench/fleet.sh: a relay between two Unix sockets that holds
every byte for a fixed time in each direction, in order, as `tc netem delay`
would on a host's interface (this machine's kernel has no netem).

    delay_proxy.py LISTEN_SOCKET TARGET_SOCKET UP_MS DOWN_MS

UP_MS delays what the client sends (apikey-syncd's queries), DOWN_MS what
the server sends (its answers and notifications). Prints "ready" once
listening; runs until killed."""
import asyncio
import sys
import time


async def pump(reader, writer, delay_s):
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((time.monotonic() + delay_s, data or None))
            if not data:
                break
    except ConnectionError:
        queue.put_nowait((0, None))
    try:
        await sender
    except ConnectionError:
        pass


async def main():
    listen, target, up_ms, down_ms = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])

    async def relay(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_unix_connection(target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pump(client_r, server_w, up_ms / 1000), pump(server_r, client_w, down_ms / 1000))

    server = await asyncio.start_unix_server(relay, path=listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
