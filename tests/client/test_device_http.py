"""``DeviceClient`` over HTTP against a real server: batches, retries that keep the readings'
times (through a server kill and restart, and from a closed port), heartbeats, commands."""

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from telemetra.client import ApiError, Backoff, DeviceClient, HttpLink, Unreachable
from tests.server import free_port

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _stored(admin, device_id, key=None) -> list:
    return list(admin.readings(device_id=device_id, keys=[key] if key else None))


def test_recorded_readings_go_in_batches_and_a_resend_is_a_duplicate(server, admin, device):
    requests = []
    http = httpx.Client(event_hooks={"request": [requests.append]})
    client = DeviceClient(server.base, device.id, device.api_key, batch_size=500, http=http)
    for n in range(1200):
        client.record({"temperature": 20 + n / 100}, ts=T0 + timedelta(seconds=n))
    assert client.pending == 1200
    result = client.flush()
    assert (result.sent, result.accepted, result.duplicates, result.rejected) == (
        1200, 1200, 0, ())
    assert client.pending == 0
    assert len(requests) == 3  # 500 + 500 + 200
    stored = _stored(admin, device.id)
    assert [r.ts for r in stored] == [T0 + timedelta(seconds=n) for n in range(1200)]
    assert stored[-1].value == pytest.approx(31.99)

    again = client.send({"temperature": 20.0}, ts=T0)
    assert (again.accepted, again.duplicates) == (0, 1)
    client.close()
    http.close()


def test_untimed_values_are_timed_when_recorded_with_units_and_tags(server, admin, device):
    with DeviceClient(server.base, device.id, device.api_key) as client:
        before = datetime.now(UTC)
        client.record(humidity=48.5, units={"humidity": "%"}, tags=["lab"])
        recorded = datetime.now(UTC)
        time.sleep(0.3)
        client.flush()
    [reading] = _stored(admin, device.id)
    assert before <= reading.ts <= recorded
    assert (reading.key, reading.value, reading.unit, reading.tags) == (
        "humidity", 48.5, "%", ["lab"])


def test_a_retry_after_the_server_was_killed_keeps_the_original_times(server, admin, device):
    client = DeviceClient(server.base, device.id, device.api_key,
                          backoff=Backoff(attempts=None, base=0.1, cap=0.5), timeout=2)
    client.record({"pressure": 1013.2})  # timed now, before the outage
    server.kill()
    client.record({"pressure": 1013.4})  # taken during the outage
    taken = [m.ts for m in list(client._buffer)]
    results = []
    flusher = threading.Thread(target=lambda: results.append(client.flush()))
    flusher.start()
    time.sleep(1.5)  # several attempts fail while the server is down
    assert flusher.is_alive() and client.pending == 2
    restarted_at = datetime.now(UTC)
    server.start()
    flusher.join(30)
    assert results and results[0].accepted == 2
    client.close()
    stored = _stored(admin, device.id)
    assert [r.ts for r in stored] == taken
    assert all(ts < restarted_at for ts in taken)


def test_readings_left_unsent_after_the_attempts_keep_their_times(server, admin, device):
    closed = f"http://127.0.0.1:{free_port()}"
    client = DeviceClient(closed, device.id, device.api_key,
                          backoff=Backoff(attempts=3, base=0.01, cap=0.05))
    client.record({"light": 300}, ts=T0)
    client.record({"light": 310})
    taken = [m.ts for m in list(client._buffer)]
    with pytest.raises(Unreachable):
        client.flush()
    assert client.pending == 2
    time.sleep(0.2)
    client.link = HttpLink(server.base, device.id, device.api_key)  # the platform is back
    assert client.flush().accepted == 2
    assert [r.ts for r in _stored(admin, device.id)] == taken
    client.close()


def test_an_error_not_worth_retrying_is_raised_at_once(server, device):
    client = DeviceClient(server.base, device.id, "tdk_not-the-key",
                          backoff=Backoff(attempts=6, base=1, cap=5))
    client.record({"t": 1})
    started = time.monotonic()
    with pytest.raises(ApiError) as raised:
        client.flush()
    assert raised.value.status == 401 and raised.value.code == "unauthorized"
    assert time.monotonic() - started < 1
    assert client.pending == 1
    client.close()


def test_readings_refused_by_the_platform_come_back_with_their_reason(server, device):
    with DeviceClient(server.base, device.id, device.api_key) as client:
        result = client.send({"t": 1.0}, ts=datetime(2099, 1, 1, tzinfo=UTC))
    assert (result.accepted, len(result.rejected)) == (0, 1)
    assert "future" in result.rejected[0].reason
    assert client.pending == 0


def test_heartbeat_marks_the_device_online(server, admin, device):
    with DeviceClient(server.base, device.id, device.api_key) as client:
        status = client.heartbeat(firmware_version="1.2.3")
    assert status.online and status.last_seen is not None
    assert admin.request("GET", f"/devices/{device.id}").json()["firmware_version"] == "1.2.3"


def test_commands_are_received_and_answered_over_http(server, admin, device):
    interval = admin.send_command(device.id, "set_interval", {"seconds": 2})
    unknown = admin.send_command(device.id, "self_destruct")

    def handler(command):
        if command.name != "set_interval":
            raise ValueError(f"unknown command {command.name}")
        return {"interval": command.params["seconds"]}

    with DeviceClient(server.base, device.id, device.api_key) as client:
        handled = client.handle_commands(handler)
        assert [c.id for c in handled] == [interval.id, unknown.id]
        assert client.commands() == []  # delivered: not handed out twice
    done = admin.command(device.id, interval.id)
    assert (done.status, done.result) == ("succeeded", {"interval": 2})
    failed = admin.command(device.id, unknown.id)
    assert (failed.status, failed.result) == ("failed", {"error": "unknown command self_destruct"})


def test_back_off_grows_with_full_jitter_and_honours_retry_after():
    backoff = Backoff(base=0.5, cap=4)
    for retry, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 4.0)]:
        delays = [backoff.delay(retry) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2 and len(set(delays)) > 100
    assert all(backoff.delay(0, retry_after=3) >= 3 for _ in range(50))


def test_a_value_that_cannot_be_sent_is_refused_when_recorded(server, device):
    with DeviceClient(server.base, device.id, device.api_key) as client:
        for bad in (float("nan"), float("inf"), "warm", None):
            with pytest.raises(ValueError, match="not a finite number"):
                client.record({"ok": 1.0, "bad": bad})
        assert client.pending == 0  # all or nothing
        client.record({"on": True})
        assert client.flush().accepted == 1


def test_rejections_name_their_place_in_the_whole_flush(server, device):
    with DeviceClient(server.base, device.id, device.api_key, batch_size=2) as client:
        for n in range(5):
            ts = datetime(2099, 1, 1, tzinfo=UTC) if n == 3 else T0 + timedelta(hours=1, seconds=n)
            client.record({"level": n}, ts=ts)
        result = client.flush()
    assert (result.sent, result.accepted) == (5, 4)
    assert [r.index for r in result.rejected] == [3]
