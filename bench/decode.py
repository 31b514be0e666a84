"""What strict ingestion bodies cost: ``decode_body`` strict (the default: unknown fields are
refused) against lenient (``strict=False``, what a connector's upstream gets), paired in the
same seconds, on the bodies devices send most.

    .venv/bin/python -u bench/decode.py  # BENCH_DECODE_PAIRS (40), BENCH_DECODE_SECONDS (0.05)

Prints, per body, decodes per CPU second both ways (the best run of each, as timeit does)
and the ratio strict / lenient (1.0: free).
Pure CPU in this process: no server, no database.
"""

import os
import statistics
import time

from telemetra.ingest.decode import decode_body, parse_json

PAIRS = int(os.environ.get("BENCH_DECODE_PAIRS", "40"))
SECONDS = float(os.environ.get("BENCH_DECODE_SECONDS", "0.05"))
T = 1767268800
BODIES = {
    "1 keys (not checked)": b'{"temperature": 21.5, "humidity": 40}',
    "2 values, one object": b'{"ts": 1767268800, "values": {"temperature": 21.5, "humidity": 40}}',
    "4 readings, 10 items": ('{"readings": [' + ", ".join(
        f'{{"key": "k{i}", "value": {i}.5, "unit": "C", "ts": {T + i}}}' for i in range(10))
        + "]}").encode(),
    "5 sensor_type, list of 10": ("[" + ", ".join(
        f'{{"sensor_type": "k{i}", "value": {i}.5, "unit": "C"}}' for i in range(10))
        + "]").encode(),
    "6 bytes, list of 100": ("[" + ", ".join(
        f'{{"time": {T + i}, "value": [157, 42, 76, 190], "tags": ["a"]}}' for i in range(100))
        + "]").encode(),
    "7 sensor_id, one object": b'{"sensor_id": 12, "value": 22.5, "unit": "C", "ts": 1767268800}',
}


def rate(body, strict: bool) -> float:
    """Decodes per CPU second of one parsed body for ``SECONDS`` (parse excluded: it is the
    same). CPU time of this process, not wall time: on a shared machine the other processes'
    share of the cores must not count as ours."""
    n, started = 0, time.process_time()
    deadline = started + SECONDS
    while True:
        for _ in range(20):
            decode_body(body, strict=strict)
        n += 20
        now = time.process_time()
        if now >= deadline:
            return n / (now - started)


def main() -> None:
    print(f"decode_body strict / lenient, {PAIRS} pairs of {SECONDS} s each, alternating order")
    ratios_all = []
    for name, raw in BODIES.items():
        body = parse_json(raw)
        strict_rates, lenient_rates = [], []
        for pair in range(PAIRS):
            order = (True, False) if pair % 2 == 0 else (False, True)
            for strict in order:
                (strict_rates if strict else lenient_rates).append(rate(body, strict))
        ratios = [s / lenient for s, lenient in zip(strict_rates, lenient_rates, strict=True)]
        # The best of each (as timeit does: noise only ever slows a run down), and the
        # pairs' median as a check.
        ratio = max(strict_rates) / max(lenient_rates)
        ratios_all.append(ratio)
        print(f"  {name:28} strict {max(strict_rates):>11,.0f}/s  "
              f"lenient {max(lenient_rates):>11,.0f}/s  ratio {ratio:.3f} "
              f"(pairs' median {statistics.median(ratios):.3f})")
    print(f"median ratio over the bodies: {statistics.median(ratios_all):.3f}")


if __name__ == "__main__":
    main()
