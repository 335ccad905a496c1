"""The slowloris attacker of test_webhook_slowloris, run as its own process so it does not share the client's loop.

usage: python slowloris_attacker.py PORT CA_FILE CONNECTIONS SECONDS   (prints the connections it opened)
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
import time


async def slow_client(port: int, context: ssl.SSLContext | None, until: float, opened: list[int]) -> None:
    """One attacker slot: connect, trickle (or stall), and reconnect whenever the webhook drops it."""
    while time.monotonic() < until:
        writer = None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=context), 15)
            opened[0] += 1
            if context is not None:
                writer.write(b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            while time.monotonic() < until:
                if context is not None:
                    writer.write(b"X")  # one byte of a header that never ends
                    await writer.drain()
                with contextlib.suppress(asyncio.TimeoutError):
                    if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                        break  # dropped by the webhook: take the slot again
        except (OSError, ssl.SSLError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            await asyncio.sleep(0.1)
        finally:
            if writer is not None:
                writer.transport.abort()


async def main(port: int, ca_file: str, count: int, seconds: float) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    until = time.monotonic() + seconds
    opened = [0]
    await asyncio.gather(*(slow_client(port, context if i % 2 else None, until, opened) for i in range(count)))
    print(opened[0])


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
