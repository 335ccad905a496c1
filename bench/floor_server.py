"""The floor: a bare aiohttp TLS server answering every review with a precomputed answer.

What the webhook would cost if injecting were free: the same aiohttp, the
same TLS certificate, the same event loop, the same request body read in
full; no parsing, no engine, one constant answer. meshfit's throughput is
reported as a ratio to this server measured in the same run.

Two answers:

* by default a fixed tiny AdmissionReview (``allowed``, no patch), for the
  load generator of benchmark 1, which checks nothing else;
* ``--answer FILE``: meshfit's own answer for one pod shape, computed once
  (patch and all), for a kube-apiserver to apply to every pod of that shape
  (benchmark 2's injecting floor). A real apiserver refuses an answer whose
  ``uid`` is not its request's, so the floor finds the request's uid by a
  byte search (the apiserver writes ``request.uid`` first) and puts it in
  place of the file's zero uid. A review whose pod already carries
  ``meshfit.io/status`` gets the tiny answer, as meshfit passes it (the
  shipped matchConditions keep such pods away; a configuration reinvoking
  the webhook would otherwise give a pod its sidecars twice).

    python -m bench.floor_server --cert-dir DIR --port PORT [--answer FILE]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from certs.reload import server_context
from cli.event_loop import run

#: The uid an ``--answer`` file carries, replaced by each request's.
ZERO_UID = b"00000000-0000-0000-0000-000000000000"
ANSWER = (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",'
          b'"response":{"uid":"' + ZERO_UID + b'","allowed":true}}')
#: The annotation meshfit's patch adds; present on a reinvoked review.
INJECTED_MARK = b'"meshfit.io/status"'

Handler = Callable[[web.Request], Awaitable[web.Response]]


async def mutate(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=ANSWER, content_type="application/json")


def request_uid(body: bytes) -> bytes:
    """``request.uid`` by a byte search: the first ``"uid":"`` after ``"request":``."""
    start = body.find(b'"uid":"', body.find(b'"request":'))
    if start < 0:
        return ZERO_UID
    start += len(b'"uid":"')
    return body[start:body.index(b'"', start)]


def answering(answer: bytes) -> Handler:
    """A handler answering ``answer`` (its zero uid made the request's), or the tiny answer once injected."""
    head, zero, tail = answer.partition(ZERO_UID)
    if not zero:
        raise ValueError(f"the answer must carry the uid {ZERO_UID.decode()}")
    small_head, _, small_tail = ANSWER.partition(ZERO_UID)

    async def mutate_with(request: web.Request) -> web.Response:
        body = await request.read()
        uid = request_uid(body)
        if INJECTED_MARK in body:
            return web.Response(body=small_head + uid + small_tail, content_type="application/json")
        return web.Response(body=head + uid + tail, content_type="application/json")

    return mutate_with


async def serve(cert_dir: Path, host: str, port: int, answer: bytes | None = None) -> None:
    context = server_context()  # the webhook's own TLS settings
    context.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    app = web.Application(client_max_size=7 * 1024 * 1024)
    app.router.add_post("/mutate", mutate if answer is None else answering(answer))
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
    parser.add_argument("--answer", type=Path, default=None,
                        help=f"answer every review with this file's bytes (its uid {ZERO_UID.decode()} replaced)")
    args = parser.parse_args()
    run(serve(args.cert_dir, args.host, args.port, args.answer.read_bytes() if args.answer else None))


if __name__ == "__main__":
    main()
