"""The link's own flow control, against a real Mosquitto: never more than
``receive_maximum`` messages taken in and not yet acknowledged."""

import asyncio
import subprocess

from telemetra.mqtt.link import BrokerAddress, Link


def test_no_more_than_receive_maximum_unacknowledged_even_once_acks_flow(broker):
    async def run() -> list[int]:
        received = []
        link = Link(BrokerAddress.from_url(broker.url), client_id="link-test",
                    receive_maximum=10, session_expiry_seconds=60, on_messages=received.extend,
                    on_connected=lambda session_present: None, on_disconnected=lambda: None)
        link.subscribe(["$share/g/t/#"])
        link.start()
        while not link.connected:
            await asyncio.sleep(0.02)
        lines = b"".join(b"m%d\n" % n for n in range(100))
        await asyncio.to_thread(subprocess.run, ["mosquitto_pub", "-p", str(broker.port),
                                                 "-q", "1", "-l", "-t", "t/x"], input=lines,
                                check=True)
        await asyncio.sleep(0.5)
        counts = [len(received)]
        for message in received[:5]:
            link.ack(message)
        # Mosquitto 2.0 sends well past its Receive Maximum once acks arrive; the link stops
        # reading instead.
        await asyncio.sleep(0.5)
        counts.append(len(received))
        for message in received[5:]:
            link.ack(message)
        await asyncio.sleep(0.5)
        counts.append(len(received))
        await link.stop()
        return counts

    first, after_five_acks, after_all_acks = asyncio.run(run())
    assert first == 10
    assert after_five_acks <= 15
    assert after_all_acks > after_five_acks  # reading resumed
