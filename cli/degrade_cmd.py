"""``meshfit degrade set|list|clear``: emergency values of the sidecars' runtime parameters, each with an expiry.

On-call flips a switch for a namespace (or an app, a zone, the fleet) with a
reason and a duration; the controller writes the new value into the ConfigMaps
the sidecars read, within its reconcile period, and takes it back by itself
when the duration is over. Every value is checked against the policy the
cluster serves before anything is written, so a typo is refused with the path
of the declaration that refuses it, and the store keeps what it had.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from cli.cluster_options import add_cluster_options
from cli.errors import CommandError
from cli.fleet_source import open_client, run_async, table
from cli.output import add_output_option, structured
from policy.runtime import text_of

#: Writes that lost to another writer are read again and retried this often.
RETRIES = 5


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "degrade", help="set, list or clear degradations: emergency values of the sidecars' runtime parameters",
        description="Degradations beat every rule of the policy's runtime section until they expire; the "
                    "controller delivers them to the sidecars' mounted files without restarting anything.")
    actions = p.add_subparsers(dest="degrade_command", metavar="ACTION")
    actions.required = True

    s = actions.add_parser("set", help="degrade parameters for a namespace, app, zone or the whole fleet",
                           description="e.g. meshfit degrade set traceLog=off -n pay --for 2h --reason 'INC-42'")
    s.add_argument("values", nargs="+", metavar="PARAM=VALUE", help="one or more parameters and their values")
    s.add_argument("--sidecar", default=None, help="only this sidecar (default: every sidecar declaring PARAM)")
    scope = s.add_mutually_exclusive_group(required=True)
    scope.add_argument("-n", "--namespace", default=None, metavar="NS", help="the namespace to degrade")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace (said explicitly)")
    s.add_argument("--app", default=None, help="only pods of this app (the policy's app label)")
    s.add_argument("--zone", default=None, help="only pods of this zone (the policy's zone label)")
    s.add_argument("--for", dest="duration", required=True, metavar="DURATION",
                   help="how long, e.g. 30m, 2h, 1d (at most the policy's runtime.maxDegradation)")
    s.add_argument("--reason", required=True, help="why: an incident, a ticket (kept in the audit and the Event)")
    _common(s)
    s.set_defaults(func=run_set)

    lst = actions.add_parser("list", help="the degradations in the store, with who set them, why and until when")
    lst.add_argument("--all", action="store_true", help="with the audit trail (set, cleared, expired)")
    _common(lst, policy=False)
    lst.set_defaults(func=run_list)

    c = actions.add_parser("clear", help="end degradations before their time (the values revert)")
    c.add_argument("ids", nargs="*", metavar="ID", help="the degradations to clear (meshfit degrade list shows them)")
    c.add_argument("--all", action="store_true", help="every degradation (with -n: every one of that namespace)")
    c.add_argument("-n", "--namespace", default=None, metavar="NS", help="with --all: only this namespace's")
    c.add_argument("--reason", required=True, help="why they end early (kept in the audit and the Event)")
    _common(c, policy=False)
    c.set_defaults(func=run_clear)


def _common(p: argparse.ArgumentParser, *, policy: bool = True) -> None:
    p.add_argument("--store", default="meshfit-system/meshfit-degradations", metavar="NS/NAME",
                   help="the degradations' ConfigMap (default meshfit-system/meshfit-degradations)")
    if policy:
        p.add_argument("--policy-configmap", default="meshfit-system/meshfit-policy", metavar="NS/NAME",
                       help="the policy whose declarations judge the values (default meshfit-system/meshfit-policy)")
    add_cluster_options(p, what="the cluster whose degradations to change")
    add_output_option(p, table="the degradations, for a person to read")


def _ref(text: str, flag: str) -> tuple[str, str]:
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name:
        raise CommandError(f"{flag} must be NS/NAME, got {text!r}", exit_code=2)
    return namespace, name


# -- set ------------------------------------------------------------------------
def run_set(args: argparse.Namespace) -> int:
    from policy.degradations import Degradation, DegradationError, check, new_id, parse_duration

    try:
        span = parse_duration(args.duration)
    except DegradationError as exc:
        raise CommandError(str(exc), exit_code=2) from None
    pairs: list[tuple[str, str]] = []
    for item in args.values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"{item!r}: expected PARAM=VALUE, e.g. traceLog=off", exit_code=2)
        pairs.append((key.strip(), value.strip()))
    if not args.reason.strip():
        raise CommandError("--reason must say why", exit_code=2)

    async def main() -> list[Degradation]:
        async with open_client(args) as client:
            policy = await _policy(client, _ref(args.policy_configmap, "--policy-configmap"))
            by = await _who(client)
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            scope = f"{args.sidecar}/{args.namespace}/{args.app}/{args.zone}"
            records: list[Degradation] = []
            refusals: list[str] = []
            for key, value in pairs:
                d = Degradation(id=new_id(key, scope, now), parameter=key, value=value, reason=args.reason.strip(),
                                by=by, at=now, until=now + span, sidecar=args.sidecar, namespace=args.namespace,
                                app=args.app, zone=args.zone)
                checked, why = check(policy.runtime, d)
                if checked is None:
                    refusals.append(f"{key}={value}: {why}")
                else:
                    records.append(checked)
            if refusals:
                raise CommandError("refused, nothing written:\n  " + "\n  ".join(refusals))
            await _change(client, _ref(args.store, "--store"), add=records, remove=(), action="set", by=by,
                          reason=args.reason.strip(), now=now)
            return records

    records = run_async(main)
    _print(args, records, dt.datetime.now(dt.UTC))
    return 0


# -- list -------------------------------------------------------------------------
def run_list(args: argparse.Namespace) -> int:
    from policy.degradations import read_store

    async def main() -> dict[str, Any] | None:
        async with open_client(args) as client:
            return await read_configmap(client, _ref(args.store, "--store"))

    store = read_store((run_async(main) or {}).get("data"))
    for line in store.broken:
        print(f"warning: skipped {line}", file=sys.stderr)
    now = dt.datetime.now(dt.UTC)
    if args.all and args.output != "table":
        import orjson

        sys.stdout.write(structured({"degradations": [_row(d, now) for d in store.records],
                                     "audit": [orjson.loads(line) for line in store.audit]}, args.output))
        return 0
    _print(args, list(store.records), now)
    if args.all and args.output == "table":
        print("\naudit:")
        for line in store.audit:
            print(f"  {line}")
    return 0


# -- clear ------------------------------------------------------------------------
def run_clear(args: argparse.Namespace) -> int:
    from policy.degradations import Degradation, read_store

    if not args.ids and not args.all:
        raise CommandError("name the degradations to clear (IDs), or --all", exit_code=2)
    if args.ids and args.all:
        raise CommandError("IDs or --all, not both", exit_code=2)
    if args.namespace and not args.all:
        raise CommandError("-n goes with --all (IDs name their degradations already)", exit_code=2)

    async def main() -> list[Degradation]:
        async with open_client(args) as client:
            store_ref = _ref(args.store, "--store")
            records = read_store((await read_configmap(client, store_ref) or {}).get("data")).records
            if args.all:
                chosen = [d for d in records if args.namespace is None or d.namespace == args.namespace]
            else:
                known = {d.id: d for d in records}
                missing = [i for i in args.ids if i not in known]
                if missing:
                    raise CommandError(f"no degradation {', '.join(missing)} in {args.store} (meshfit degrade list)")
                chosen = [known[i] for i in dict.fromkeys(args.ids)]
            if chosen:
                await _change(client, store_ref, add=(), remove=chosen, action="cleared", by=await _who(client),
                              reason=args.reason.strip(), now=dt.datetime.now(dt.UTC).replace(microsecond=0))
            return chosen

    cleared = run_async(main)
    if args.output != "table":
        now = dt.datetime.now(dt.UTC)
        sys.stdout.write(structured([_row(d, now) for d in cleared], args.output))
    else:
        print(f"cleared {len(cleared)} degradation(s)" + (": " + ", ".join(d.id for d in cleared) if cleared else ""))
    return 0


# -- the store, read and written conditionally --------------------------------------
async def _policy(client: Any, ref: tuple[str, str]) -> Any:
    from kube.client import ApiError
    from policy.fields import PolicyError
    from policy.load import policy_from_configmap

    try:
        configmap = await client.get_json(f"/api/v1/namespaces/{ref[0]}/configmaps/{ref[1]}")
    except ApiError as exc:
        if exc.status == 404:
            raise CommandError(f"no policy ConfigMap {ref[0]}/{ref[1]} (--policy-configmap)") from None
        raise
    try:
        return policy_from_configmap(configmap)
    except PolicyError as exc:
        raise CommandError(f"the cluster's policy is invalid, so no value can be judged: {exc.one_line()}") from None


async def _who(client: Any) -> str:
    """The caller's user name, as the apiserver authenticates it (SelfSubjectReview, GA in 1.28)."""
    from kube.client import ApiError

    try:
        review = await client.post_json("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    except ApiError:
        return "unknown"
    return str(((review.get("status") or {}).get("userInfo") or {}).get("username") or "unknown")


async def read_configmap(client: Any, ref: tuple[str, str]) -> dict[str, Any] | None:
    """The ConfigMap ``(namespace, name)``, or ``None`` when there is none (the store before its first write)."""
    from kube.client import ApiError

    try:
        result: dict[str, Any] = await client.get_json(f"/api/v1/namespaces/{ref[0]}/configmaps/{ref[1]}")
        return result
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


async def _change(client: Any, ref: tuple[str, str], *, add: Any, remove: Any, action: str, by: str, reason: str,
                  now: dt.datetime) -> None:
    """Add and remove records in one conditional write (re-read on a conflict), with audit lines and an Event each."""
    from kube.client import ApiError
    from kube.events import EventRecorder
    from policy.degradations import audit_line, read_store, write_store

    namespace, name = ref
    collection = f"/api/v1/namespaces/{namespace}/configmaps"
    for _ in range(RETRIES):
        current = await read_configmap(client, ref)
        store = read_store((current or {}).get("data"))
        if store.unreadable or store.broken:
            raise CommandError(f"{namespace}/{name} holds records that cannot be read ({'; '.join(store.broken)}): "
                               "fix or remove them first; nothing was written")
        ids = {d.id for d in remove}
        records = [d for d in store.records if d.id not in ids] + list(add)
        changed = [*add, *(d for d in store.records if d.id in ids)]
        audit = [*store.audit, *(audit_line(action, d, by=by, at=now, reason=reason) for d in changed)]
        data = write_store(records, audit)
        try:
            if current is None:
                written = await client.post_json(collection, {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": namespace,
                                 "labels": {"app.kubernetes.io/managed-by": "meshfit"}},
                    "data": data})
            else:
                written = await client.request("PUT", f"{collection}/{name}", {**current, "data": data})
        except ApiError as exc:
            if exc.status == 409:
                continue
            raise
        events = EventRecorder(client, "meshfit-cli")
        for d in changed:
            await events.record(written, reason="DegradationSet" if action == "set" else "DegradationCleared",
                                type_="Warning" if action == "set" else "Normal",
                                message=f"{d.id}: {d.parameter}={text_of(d.value)} for {d.scope()} {action} by {by} "
                                        f"until {d.until.isoformat()}: {reason}")
        return
    raise CommandError(f"{namespace}/{name} kept changing under {RETRIES} attempts; try again")



def _row(d: Any, now: dt.datetime) -> dict[str, Any]:
    state = "active" if d.active(now) else "expired" if now >= d.until else "pending"
    return {**d.to_json(), "state": state, "remainingSeconds": max(0, int((d.until - now).total_seconds()))}


def _print(args: argparse.Namespace, records: list[Any], now: dt.datetime) -> None:
    rows = [_row(d, now) for d in records]
    if args.output != "table":
        sys.stdout.write(structured(rows, args.output))
        return
    if not rows:
        print("no degradations")
        return
    lines = [["ID", "PARAMETER", "SCOPE", "STATE", "UNTIL", "LEFT", "BY", "REASON"]]
    for d, row in zip(records, rows, strict=True):
        left = row["remainingSeconds"]
        span = f"{left // 3600}h{left % 3600 // 60:02d}m" if left >= 3600 else f"{left // 60}m{left % 60:02d}s"
        lines.append([d.id, f"{d.parameter}={text_of(d.value)}", d.scope(), row["state"], row["until"], span, d.by,
                      d.reason])
    sys.stdout.write(table(lines))
