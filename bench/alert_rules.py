"""Ingestion with alert rules on the device against none: bench/live.py's rules phase, and
the rules ``bench/ingest.py`` keeps present under ``BENCH_REACTIONS=1``.

``measure_rules`` (called by bench/live.py's ``run()``, on its server and device) alternates
wrk runs (one reading a request, bench/live.py's ``measured``) without rules and with
BENCH_RULES (100) rules of mixed conditions on the device's keys, twice each, in the same
minutes, and prints readings/s, the ratio (target: drops less than 10%), the server's CPU
per 1,000 readings and the load average. As in real life most rules never fire: thresholds
far from the values sent, keys the device does not send, an ``offline`` rule; a few hold
from the first reading on (one alert each, open all along: the steady state, which must cost
no database work either). ``BENCH_RULES_PYSPY=/tmp/rules.txt`` records the server with
py-spy (folded stacks, ``--subprocesses``) during the last run with rules.
"""

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.server import API, Server

RULES = int(os.environ.get("BENCH_RULES", "100"))
PROFILE = os.environ.get("BENCH_RULES_PYSPY")
HOLDING = 3  # of every BENCH_RULES, how many hold for the values sent (the rest never fire)


def rule_bodies(device_id: int, keys: list[str], value: float, count: int = RULES) -> list:
    """``count`` rules on ``keys`` of the device, mixed conditions; ``value`` is what the
    benchmark sends. The first HOLDING hold from the first reading on; one is ``offline``;
    one in ten is organization-wide (it watches the key on every device, as such rules do);
    the others are thresholds the value never reaches, or keys never sent."""
    bodies = []
    for i in range(count):
        key = keys[i % len(keys)] if i % 7 else f"unsent_{i}"
        far = 1000 + i  # never reached by ``value``
        shapes = [
            {"condition": "gt", "threshold": value + far},
            {"condition": "gte", "threshold": value + far},
            {"condition": "lt", "threshold": value - far},
            {"condition": "lte", "threshold": value - far},
            {"condition": "eq", "threshold": value + far},
            {"condition": "ne", "threshold": value, "key": keys[0]},  # the value never changes
            {"condition": "outside", "threshold": value - far, "threshold_high": value + far},
            {"condition": "inside", "threshold": value + far, "threshold_high": value + 2 * far},
        ]
        body = {"name": f"bench rule {i}", "key": key, "severity": "warning",
                "for_seconds": 60 if i % 5 == 0 else 0, **shapes[i % len(shapes)]}
        if i < HOLDING:
            body.update(condition="gte", threshold=value - 1, key=keys[0], for_seconds=0)
        elif i == HOLDING:
            body = {"name": "bench offline", "condition": "offline"}
        if i % 10 != 9:
            body["device_id"] = device_id
        bodies.append(body)
    return bodies


def create_rules(base: str, headers: dict, device_id: int, keys: list[str], value: float,
                 count: int = RULES) -> list[int]:
    ids = []
    with httpx.Client(base_url=base + API, headers=headers, timeout=60) as client:
        for body in rule_bodies(device_id, keys, value, count):
            response = client.post("/alert-rules", json=body)
            response.raise_for_status()
            ids.append(response.json()["id"])
    return ids


def delete_rules(base: str, headers: dict, ids: list[int]) -> None:
    with httpx.Client(base_url=base + API, headers=headers, timeout=60) as client:
        for rule_id in ids:
            client.delete(f"/alert-rules/{rule_id}").raise_for_status()


def active_alerts(base: str, headers: dict) -> int:
    return httpx.get(base + API + "/analytics/summary", headers=headers,
                     timeout=60).json()["active_alerts"]


def measure_rules(server: Server, headers: dict, device: dict, label: str) -> None:
    """bench/live.py's rules phase on its server and device (see the module's text)."""
    from bench.live import SECONDS, measured  # here: bench/live.py imports this module

    env = {"TELEMETRA_KEY": device["api_key"]}
    load = [os.getloadavg()[0]]
    alone, beside, cpu_alone, cpu_beside, fired = [], [], [], [], []
    for round_ in range(2):
        rps, cpu = measured(server, env, 1650000000 + round_ * 10_000_000)
        alone.append(rps)
        cpu_alone.append(cpu)
        ids = create_rules(server.base, headers, device["id"], ["temperature"], 21.5)
        profile = None
        if PROFILE and round_ == 1:
            profile = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses",
                 "--format", "raw", "-d", str(max(1, int(SECONDS / 2) - 1)), "-o", PROFILE,
                 "--pid", str(server.process.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rps, cpu = measured(server, env, 1670000000 + round_ * 10_000_000)
            beside.append(rps)
            cpu_beside.append(cpu)
            fired.append(active_alerts(server.base, headers))
        finally:
            if profile is not None:
                profile.wait(60)
            delete_rules(server.base, headers, ids)
        load.append(os.getloadavg()[0])
    print(f"\n== {label}, {RULES} alert rules on the device ==")
    print(f"ingestion, one reading/request (wrk, 32 connections), {SECONDS / 2:.0f} s each, "
          f"alternating: no rules {' / '.join(f'{r:,.0f}' for r in alone)} req/s; with "
          f"{RULES} rules {' / '.join(f'{r:,.0f}' for r in beside)} req/s")
    print(f"  ratio with/without: {sum(beside) / sum(alone):.2f} (per round: "
          f"{', '.join(f'{b / a:.2f}' for a, b in zip(alone, beside))}); target: over 0.90")
    print(f"  the server's CPU per 1,000 readings: no rules "
          f"{' / '.join(f'{c:.0f}' for c in cpu_alone)} ms, with {RULES} rules "
          f"{' / '.join(f'{c:.0f}' for c in cpu_beside)} ms (ratio "
          f"{sum(cpu_alone) / sum(cpu_beside):.2f})")
    print(f"  active alerts with the rules: {' / '.join(map(str, fired))} (the {HOLDING} rules "
          f"that hold, one alert each); load average during the phase: "
          f"{' / '.join(f'{a:.1f}' for a in load)}")
    if PROFILE:
        print(f"  py-spy's folded stacks of the last run with rules: {PROFILE}")


class Reactions:
    """What reacts to readings, present while bench/ingest.py measures (BENCH_REACTIONS=1):
    BENCH_RULES rules on its device's keys (bench/batch.lua's k0 to k9, bench/single.lua's
    temperature; a few hold all along, the rest never fire) and bench/live.py's socket
    process (BENCH_SOCKETS, 200, subscribed to the organization's readings)."""

    KEYS = ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "temperature", "k0"]
    VALUE = 1.5  # what batch.lua always sends as k1 (KEYS[0])

    def __init__(self, server: Server, device_id: int, workdir: Path,
                 sockets: bool = True) -> None:
        from bench.live import SOCKETS, Sockets  # here: bench/live.py imports bench/ingest

        self.server, self.headers = server, server.login()
        self.rules = create_rules(server.base, self.headers, device_id, self.KEYS, self.VALUE)
        token = self.headers["Authorization"].removeprefix("Bearer ")
        self.sockets = (Sockets(server, token, workdir / "reactions-sockets.json") if sockets
                        else None)
        self.socket_count = SOCKETS if sockets else 0

    def stop(self) -> str:
        """Close the sockets; what they and the rules saw, to print."""
        seen = (self.sockets.stop() if self.sockets is not None
                else {"messages": 0, "lagged": 0, "cpu_s": 0.0})
        alerts = active_alerts(self.server.base, self.headers)
        return (f"{len(self.rules)} alert rules ({alerts} active alerts) and "
                f"{self.socket_count} sockets present: "
                f"{seen['messages']:,} messages, {seen['lagged']:,} lagged notices, the "
                f"sockets' process used {seen['cpu_s']:.1f} s of CPU")
