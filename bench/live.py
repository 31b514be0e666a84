"""Live fan-out benchmark: 200 sockets subscribed to one device while it ingests over HTTP.

    .venv/bin/python bench/live.py            (or: make bench)
    BENCH_SECONDS=20 BENCH_BACKENDS=postgresql,sqlite BENCH_SOCKETS=200 BENCH_LIVE_RATE=5000

Prints, per backend, with one ``telemetra serve`` (``BENCH_WORKERS``, default 1):
1. ingestion throughput (wrk, one reading a request, as devices send them) with no socket
   open, then with BENCH_SOCKETS sockets subscribed to the device: readings/s and the ratio
   (target: drops less than 10%). Baseline and measurement alternate, BENCH_LIVE_ROUNDS times
   each (2), in the same minutes, so the machine's drift shows as spread rather than as a ratio;
2. delivery latency while the device ingests about BENCH_LIVE_RATE readings/s (100 requests a
   second of BENCH_LIVE_RATE/100 readings, paced): for every body and every tenth socket (all
   200 receive everything; timing each message in all of them made the client the bottleneck),
   the time from its 202 reaching the client to its readings reaching the socket; p50 and p99
   (target: p99 under 250 ms), and how many messages sockets lost to lag.
The sockets live in a process of their own (this script with ``--sockets``): the timed ones
a real ``websockets`` client each, the others raw sockets that only split frames and count
them (``silent``); its CPU time is printed, as it shares the machine's cores. Sockets offer
permessage-deflate, as browsers do (``BENCH_LIVE_COMPRESSION=none``: they offer nothing).
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import wrk  # noqa: E402
from tests import pgcluster  # noqa: E402
from tests.server import API, Server  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
BACKENDS = os.environ.get("BENCH_BACKENDS", "postgresql,sqlite").split(",")
SOCKETS = int(os.environ.get("BENCH_SOCKETS", "200"))
RATE = int(os.environ.get("BENCH_LIVE_RATE", "5000"))  # readings/s of the latency phase
REQUESTS_PER_SECOND = 100
LOADERS = 8  # connections of the paced load
PROBE = "probe"  # the key of the latency phase's readings
PROBE_BYTES = b'"key":"probe"'
VALUE = re.compile(rb'"value":(\d+)')
PROBE_EVERY = 10  # one socket in ten times its messages (all of them receive everything)
COMPRESSION = os.environ.get("BENCH_LIVE_COMPRESSION", "deflate")  # or "none"
ROUNDS = int(os.environ.get("BENCH_LIVE_ROUNDS", "2"))  # baseline and sockets alternations


async def hold_sockets(url: str, count: int, out: Path) -> None:
    """The ``--sockets`` process: ``count`` sockets subscribed through ``url``; on stdin's
    end, writes what they saw to ``out``: message counts, lag, and for each probe reading
    (its value is the body's number) the times it reached each socket."""
    import websockets

    arrivals: dict[int, list[float]] = {}
    counts = {"messages": 0, "lagged": 0, "dropped": 0}

    async def one(index: int) -> None:
        if index % PROBE_EVERY:  # the others only receive, as raw bytes: the client is cheaper
            await silent(url, counts, ready, index)
            return
        timed = True
        async with websockets.connect(url, max_queue=None, ping_interval=None,
                                      compression=None if COMPRESSION == "none" else "deflate"
                                      ) as socket:
            await socket.send('{"type": "subscribe", "topic": "readings"}')
            ready.append(index)
            while True:
                data = await socket.recv(decode=False)
                counts["messages"] += 1
                if timed and PROBE_BYTES in data:
                    now = time.time()
                    for n in set(VALUE.findall(data)):
                        arrivals.setdefault(int(n), []).append(now)
                elif b'"lagged"' in data:
                    counts["lagged"] += 1
                    counts["dropped"] += json.loads(data)["dropped"]

    ready: list[int] = []
    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    while len(ready) < count:
        await asyncio.sleep(0.05)
        if any(task.done() for task in tasks):
            [task.result() for task in tasks if task.done()]
    await asyncio.sleep(0.5)  # every subscription made
    setup = time.process_time()  # 200 handshakes and subscriptions
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    cpu = time.process_time() - setup
    out.write_text(json.dumps({**counts, "cpu_s": cpu, "setup_cpu_s": setup,
                               "arrivals": arrivals}))
    for task in tasks:
        task.cancel()


_READINGS = b'{"type":"readings"'


async def silent(url: str, counts: dict, ready: list, index: int) -> None:
    """A socket that subscribes, then reads the stream's frames without a WebSocket library:
    a real client's cost is its own machine's, and on this one a parsing client of 180
    sockets took nearly half a core from the server it measures. Frames are split by their
    headers, inflated if compressed, and counted by their opening bytes. The server's
    keep-alive pings go unanswered: it would close the socket 20 s after the first, at 40 s,
    longer than any phase holds it."""
    host, _, rest = url.removeprefix("ws://").partition("/")
    address, _, port = host.partition(":")
    reader, writer = await asyncio.open_connection(address, int(port))
    offer = ("" if COMPRESSION == "none" else
             "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
    writer.write((f"GET /{rest} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  f"Sec-WebSocket-Version: 13\r\n{offer}\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"no WebSocket: {head[:200]!r}")
    counts["deflate"] = counts.get("deflate", 0) + (b"permessage-deflate" in head)
    writer.write(_client_frame(0x1, b'{"type": "subscribe", "topic": "readings"}'))
    ready.append(index)
    buffer = bytearray()
    while data := await reader.read(1 << 20):
        buffer += data
        while len(buffer) >= 2:
            first, size, start = buffer[0], buffer[1] & 0x7F, 2
            if size >= 126:
                start = 4 if size == 126 else 10
                if len(buffer) < start:
                    break
                size = int.from_bytes(buffer[2:start], "big")
            if len(buffer) < start + size:
                break
            payload = bytes(buffer[start:start + size])
            del buffer[:start + size]
            if first & 0x0F != 0x1:  # pings and the rest
                continue
            if first & 0x40:  # compressed (RSV1)
                payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
            if payload.startswith(_READINGS):
                counts["messages"] += 1
            elif b'"lagged"' in payload:
                counts["lagged"] += 1
                counts["dropped"] += json.loads(payload)["dropped"]


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (masked, as clients must), for payloads under 126 bytes."""
    mask = os.urandom(4)
    return (bytes([0x80 | opcode, 0x80 | len(payload)]) + mask
            + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


class Sockets:
    """The socket process, started and stopped by the benchmark."""

    def __init__(self, server: Server, token: str, out: Path) -> None:
        self.out = out
        url = f"{server.base.replace('http://', 'ws://')}{API}/ws?token={token}"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--sockets", url, str(SOCKETS), str(out)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the sockets did not connect: {line!r}")

    def stop(self) -> dict:
        self.process.stdin.close()
        self.process.wait(120)
        return json.loads(self.out.read_text())


async def paced_load(server: Server, key: str, seconds: float) -> tuple[dict, dict]:
    """About RATE readings/s in REQUESTS_PER_SECOND bodies a second; when each was sent and
    when it was answered."""
    per_body = max(1, RATE // REQUESTS_PER_SECOND)
    answered: dict[int, float] = {}
    sent: dict[int, float] = {}
    base = time.time() - 86_400  # past times, distinct for every reading

    async def post(client: httpx.AsyncClient, n: int) -> None:
        body = [{"ts": base + n * per_body / 1e3 + i / 1e3, "values": {PROBE: n}}
                for i in range(per_body)]
        for _attempt in range(3):  # a kept-alive connection the server just closed: again
            sent[n] = time.time()
            try:
                response = await client.post(server.base + API + "/readings", json=body,
                                             headers={"X-API-Key": key}, timeout=30)
            except httpx.TransportError:
                continue
            if response.status_code == 202:
                answered[n] = time.time()
            return

    # A few connections, each posting its share on schedule (or at once when behind): one
    # client with hundreds of requests queued spent its time in its own connection pool.
    total = int(seconds * REQUESTS_PER_SECOND)
    started = time.monotonic()

    async def worker(first: int) -> None:
        async with httpx.AsyncClient() as client:
            for n in range(first, total, LOADERS):
                delay = started + n / REQUESTS_PER_SECOND - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await post(client, n)

    await asyncio.gather(*(worker(k) for k in range(LOADERS)))
    return sent, answered


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` and its children so far (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for one in pids:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def measured(server: Server, env: dict, base: int) -> tuple[float, float]:
    """wrk for half the phase: requests/s, and the server's CPU ms per 1,000 readings."""
    cpu = tree_cpu_seconds(server.process.pid)
    result = wrk("single.lua", server.base, 32, {**env, "BENCH_BASE": str(base)}, SECONDS / 2)
    used = tree_cpu_seconds(server.process.pid) - cpu
    return result["rps"], used * 1e6 / max(1.0, result["rps"] * SECONDS / 2)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def run(database_url: str, workdir: Path, label: str) -> None:
    server = Server(database_url, workdir / f"{label}.log", workers=WORKERS,
                    access_token_minutes="600")
    server.start()
    try:
        headers = server.login()
        token = headers["Authorization"].removeprefix("Bearer ")
        device = httpx.post(server.base + API + "/devices", headers=headers,
                            json={"name": "bench-live"}).json()
        env = {"TELEMETRA_KEY": device["api_key"]}
        wrk("single.lua", server.base, 32, {**env, "BENCH_BASE": "1600000000"}, 5)  # warm-up
        alone, beside, cpu_alone, cpu_beside = [], [], [], []
        for round_ in range(ROUNDS):
            rps, cpu = measured(server, env, 1610000000 + round_ * 10_000_000)
            alone.append(rps)
            cpu_alone.append(cpu)
            sockets = Sockets(server, token, workdir / f"{label}-{round_}.json")
            try:
                rps, cpu = measured(server, env, 1630000000 + round_ * 10_000_000)
                beside.append(rps)
                cpu_beside.append(cpu)
            finally:
                seen_wrk = sockets.stop()
        sockets = Sockets(server, token, workdir / f"{label}-latency.json")
        try:
            sent, answered = asyncio.run(paced_load(server, device["api_key"], SECONDS))
        finally:
            seen = sockets.stop()
        __import__("bench.alert_rules").alert_rules.measure_rules(server, headers, device, label)
    finally:
        server.stop()
    latencies = [(arrived - answered[int(n)]) * 1000 for n, times in seen["arrivals"].items()
                 if int(n) in answered for arrived in times]
    from_sent = [(arrived - sent[int(n)]) * 1000 for n, times in seen["arrivals"].items()
                 if int(n) in answered for arrived in times]
    expected = len(answered) * len(range(0, SOCKETS, PROBE_EVERY))
    print(f"\n== {label}, {SOCKETS} sockets on one device ==")
    print(f"ingestion, one reading/request (wrk, 32 connections), {SECONDS / 2:.0f} s each, "
          f"alternating: no sockets {' / '.join(f'{r:,.0f}' for r in alone)} req/s; with "
          f"{SOCKETS} sockets {' / '.join(f'{r:,.0f}' for r in beside)} req/s")
    print(f"  ratio with/without: {sum(beside) / sum(alone):.2f} (per round: "
          f"{', '.join(f'{b / a:.2f}' for a, b in zip(alone, beside))})")
    print(f"  the server's CPU per 1,000 readings: no sockets "
          f"{' / '.join(f'{c:.0f}' for c in cpu_alone)} ms, with {SOCKETS} sockets "
          f"{' / '.join(f'{c:.0f}' for c in cpu_beside)} ms (ratio "
          f"{sum(cpu_alone) / sum(cpu_beside):.2f}: what the sockets cost the server itself, "
          f"whatever else the cores ran)")
    print(f"  sockets during the last wrk round: {seen_wrk['messages']:,} messages, "
          f"{seen_wrk['lagged']:,} lagged notices ({seen_wrk['dropped']:,} dropped), their "
          f"process used {seen_wrk['cpu_s']:.1f} s of CPU; "
          f"{seen_wrk.get('deflate', 0)} raw sockets of {SOCKETS} compressed "
          f"(BENCH_LIVE_COMPRESSION={COMPRESSION})")
    print(f"delivery at ~{RATE:,} readings/s ({REQUESTS_PER_SECOND} bodies/s of "
          f"{max(1, RATE // REQUESTS_PER_SECOND)}), 202 to socket: p50 "
          f"{percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
          f"max {max(latencies, default=0):.1f} ms (negative: the socket heard of it before the "
          f"loaded client read its 202)")
    print(f"  from the request's start instead (ingestion included, an upper bound): p50 "
          f"{percentile(from_sent, 0.5):.1f} ms, p99 {percentile(from_sent, 0.99):.1f} ms")
    print(f"  {len(latencies):,} of {expected:,} (body, socket) deliveries seen; "
          f"{seen['lagged']:,} lagged notices ({seen['dropped']:,} messages dropped); the "
          f"sockets' process used {seen['cpu_s']:.1f} s of CPU in {SECONDS:.0f} s")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--sockets":
        asyncio.run(hold_sockets(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])))
        return
    if shutil.which("wrk") is None:
        sys.exit("bench/live.py needs wrk: apt-get install wrk (make bench does it)")
    print(f"{SECONDS:.0f} s per measurement, {os.cpu_count()} cores, backends: {BACKENDS}, "
          f"telemetra serve --workers {WORKERS}, load average {os.getloadavg()[0]:.1f}")
    workdir = Path(tempfile.mkdtemp(prefix="telemetra-bench-live-"))
    try:
        if "postgresql" in BACKENDS:
            with pgcluster.throwaway_cluster(durable=True, shared_buffers="128MB") as cluster:
                run(pgcluster.create_database(cluster.url, "bench"), workdir,
                    "PostgreSQL (fsync on)")
        if "sqlite" in BACKENDS:
            run(f"sqlite:///{workdir / 'bench.db'}", workdir, "SQLite")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
