"""Mutated scheduler calls never get a 500 or a traceback, and never flood the log.

Every request a scheduler sends (the recordings), mutated: keys dropped, values
swapped for other JSON types, huge or non-finite numbers, deep nesting, text
where objects belong. Each answer is a verdict (200) or a 400 naming the
problem; nothing is logged with a traceback, and the WARNINGs stay a summary.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import orjson
from extender_http import Running
from replay_apiserver import recording
from test_extender_server import service_for

BODIES = {
    "filter": orjson.loads(recording("args-cache-filter.json")),
    "prioritize": orjson.loads(recording("args-full-prioritize.json")),
    "bind": orjson.loads(recording("bind.json")),
}
ODD_VALUES: list[Any] = [
    None, True, 0, -1, 2**63 - 1, 1e308, "", "x" * 300, "1e1000000", "-5", "NaN", [], {}, [None], {"": None},
    [[[[[[[[[[]]]]]]]]]], {"metadata": None}, {"name": 3},
]


def _mutate(value: Any, rng: random.Random, depth: int = 0) -> Any:
    if isinstance(value, dict) and value:
        out = dict(value)
        for key in rng.sample(list(out), k=min(len(out), rng.randint(1, 3))):
            roll = rng.random()
            if roll < 0.2:
                del out[key]
            elif roll < 0.6 and depth < 8:
                out[key] = _mutate(out[key], rng, depth + 1)
            else:
                out[key] = rng.choice(ODD_VALUES)
        return out
    if isinstance(value, list) and value and depth < 8:
        out_list = list(value)
        i = rng.randrange(len(out_list))
        out_list[i] = _mutate(out_list[i], rng, depth + 1) if rng.random() < 0.6 else rng.choice(ODD_VALUES)
        return out_list
    return rng.choice(ODD_VALUES)


async def test_mutated_calls_get_a_verdict_or_a_400_and_no_traceback(serve, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    running: Running = await serve(service_for())
    rng = random.Random(11)
    statuses: dict[int, int] = {}
    for i in range(1500):
        verb = rng.choice(list(BODIES))
        if i % 50 == 0:
            body = b'{"Pod":' * 5000  # nesting deeper than any decoder should follow
        elif i % 50 == 1:
            body = b'{"Pod": {"metadata": {"name": "x"}, "spec": {"priority": 1' + b"0" * 40 + b'}}, "NodeNames": []}'
        else:
            body = orjson.dumps(_mutate(BODIES[verb], rng))
        status, answer = await running.post(verb, body)
        statuses[status] = statuses.get(status, 0) + 1
        assert status in (200, 400), (verb, body[:300], answer)
    print(f"answers by status: {statuses}")
    assert statuses.get(400, 0) > 100
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) <= 3, [r.getMessage() for r in warnings]
