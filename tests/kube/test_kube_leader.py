"""Leader election (kube/leader.py) against the real kube-apiserver: client-go's rules on a real Lease.

Short durations (lease 2 s, renew 1.5 s, retry 0.25 s) keep every case
within a few seconds; the rules do not depend on the scale.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from controlplane.cluster import LocalCluster
from kube.client import ApiClient, ApiError
from kube.config import load_config
from kube.leader import LeaderElectionConfig, LeaderElector

pytestmark = pytest.mark.e2e

NAMESPACE = "default"


@pytest.fixture
async def client(local_cluster: LocalCluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_config(str(local_cluster.kubeconfig_path))) as api:
        yield api


def config(name: str, identity: str) -> LeaderElectionConfig:
    return LeaderElectionConfig(NAMESPACE, name, identity, lease_duration=2.0, renew_deadline=1.5,
                                retry_period=0.25)


async def lease(client: ApiClient, name: str) -> dict:
    return await client.get_json(f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{name}")


async def until(predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not predicate():
        assert loop.time() - started < timeout, "timed out"
        await asyncio.sleep(0.02)
    return loop.time() - started


@contextlib.asynccontextmanager
async def running(elector: LeaderElector) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(elector.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_one_leads_renews_and_hands_over_on_release(client: ApiClient) -> None:
    name = f"lease-{uuid.uuid4().hex[:6]}"
    a, b = LeaderElector(client, config(name, "a")), LeaderElector(client, config(name, "b"))
    async with running(a) as stop_a:
        await until(lambda: a.leading, 3)
        async with running(b):
            await asyncio.sleep(1.0)  # several renewals and several attempts of b
            assert a.leading and not b.leading and b.leader == "a"
            first = (await lease(client, name))["spec"]
            assert first["holderIdentity"] == "a" and first["leaseDurationSeconds"] == 2
            assert first["leaseTransitions"] == 0
            await asyncio.sleep(0.6)
            renewed = (await lease(client, name))["spec"]
            assert renewed["renewTime"] > first["renewTime"] and renewed["acquireTime"] == first["acquireTime"]
            stop_a.set()  # clean shutdown: a releases, b takes over at its next retry, not after 2 s
            await until(lambda: not a.leading, 5)
            took = await until(lambda: b.leading, 2)
            assert took < 1.0, took
            spec = (await lease(client, name))["spec"]
            assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


async def test_a_silent_leader_is_replaced_after_the_lease_duration(client: ApiClient) -> None:
    name = f"lease-{uuid.uuid4().hex[:6]}"
    a = LeaderElector(client, config(name, "a"))
    assert await a.try_acquire_or_renew() and a.leading  # then never renews, as if killed
    b = LeaderElector(client, config(name, "b"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with running(b):
        await until(lambda: b.leading, 4)
    waited = loop.time() - started
    assert 2.0 <= waited < 2.0 + 0.25 * 2.2 + 0.5, waited  # the lease duration, plus at most a jittered retry
    assert not a.leading  # its renew deadline passed long ago
    assert (await lease(client, name))["spec"]["leaseTransitions"] == 1


async def test_of_two_candidates_for_an_expired_lease_only_one_wins(client: ApiClient) -> None:
    name = f"lease-{uuid.uuid4().hex[:6]}"
    old = LeaderElector(client, config(name, "old"))
    assert await old.try_acquire_or_renew()
    a, b = LeaderElector(client, config(name, "a")), LeaderElector(client, config(name, "b"))
    assert not await a.try_acquire_or_renew() and not await b.try_acquire_or_renew()  # seen: held by old
    await asyncio.sleep(2.1)
    # Both read the same resourceVersion; the second write is a 409 Conflict.
    results = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())
    assert sorted(results) == [False, True]
    holder = (await lease(client, name))["spec"]["holderIdentity"]
    assert holder == ("a" if results[0] else "b")


async def test_a_leader_that_cannot_renew_stops_leading_within_the_renew_deadline(client: ApiClient) -> None:
    name = f"lease-{uuid.uuid4().hex[:6]}"
    lost: list[bool] = []
    a = LeaderElector(client, config(name, "a"), on_stopped_leading=lambda: lost.append(True))
    async with running(a):
        await until(lambda: a.leading, 3)
        real = client.request

        async def refused(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise ApiError(503, "ServiceUnavailable", "the apiserver is away")

        client.request = refused  # type: ignore[method-assign]
        try:
            gone = await until(lambda: not a.leading, 3)
        finally:
            client.request = real  # type: ignore[method-assign]
        assert gone <= 1.5 + 0.05
        await until(lambda: bool(lost), 1)
        # The apiserver is back and the lease is still its own: it leads again.
        await until(lambda: a.leading, 3)


def test_durations_are_checked() -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        LeaderElectionConfig(NAMESPACE, "x", "a", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="retry period"):
        LeaderElectionConfig(NAMESPACE, "x", "a", lease_duration=15, renew_deadline=2, retry_period=2)
