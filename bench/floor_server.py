"""The floor: a bare aiohttp TLS server answering a fixed tiny AdmissionReview.

What the webhook would cost if injecting were free: the same aiohttp, the
same TLS certificate, the same event loop, the same request body read in
full; no parsing, no engine, one constant answer. meshfit's throughput is
reported as a ratio to this server measured in the same run.

    python -m bench.floor_server --cert-dir DIR --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from aiohttp import web

from certs.reload import server_context
from cli.event_loop import run

ANSWER = (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",'
          b'"response":{"uid":"00000000-0000-0000-0000-000000000000","allowed":true}}')


async def mutate(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=ANSWER, content_type="application/json")


async def serve(cert_dir: Path, host: str, port: int) -> None:
    context = server_context()  # the webhook's own TLS settings
    context.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    app = web.Application(client_max_size=7 * 1024 * 1024)
    app.router.add_post("/mutate", mutate)
    app.router.add_get("/readyz", _ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=context).start()
    await asyncio.Event().wait()


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run(serve(args.cert_dir, args.host, args.port))


if __name__ == "__main__":
    main()
