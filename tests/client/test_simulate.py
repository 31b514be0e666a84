"""``telemetra simulate`` run briefly against a real server: readings arrive, plausible, from
the devices it registered, and a ``set_interval`` command changes a device's rate."""

import statistics
import subprocess
import sys

import pytest

from telemetra.client import Command, DeviceClient
from telemetra.client.simulate import SimulatedDevice, Stats
from tests.client.conftest import eventually
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _gaps(readings) -> list[float]:
    times = [r.ts.timestamp() for r in readings]
    return [b - a for a, b in zip(times, times[1:])]


def test_simulated_devices_send_and_a_set_interval_command_changes_the_rate(server, admin,
                                                                           tmp_path):
    run = subprocess.Popen(
        [sys.executable, "-m", "telemetra", "simulate", "--url", server.base,
         "--username", ADMIN_USERNAME, "--password", ADMIN_PASSWORD, "--devices", "2",
         "--interval", "1", "--poll", "0.2", "--prefix", "simtest", "--duration", "9"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        devices = eventually(lambda: len(found := sorted(
            admin.devices(q="simtest"), key=lambda d: d["name"])) == 2 and found, timeout=20)
        assert [d["name"] for d in devices] == ["simtest-001", "simtest-002"]
        fast, steady = devices[0]["id"], devices[1]["id"]
        eventually(lambda: len(list(admin.readings(device_id=fast, keys=["temperature"])))
                   >= 3, timeout=10)
        command = admin.send_command(fast, "set_interval", {"seconds": 0.2})
        done = eventually(lambda: (c := admin.command(fast, command.id)).status == "succeeded"
                          and c, timeout=10)
        assert done.result == {"interval": 0.2, "previous": 1.0}
        output, _ = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 0, output
    assert "readings" in output and "0 errors" in output

    before = [r for r in admin.readings(device_id=fast, keys=["temperature"])
              if r.ts < done.completed_at]
    after = [r for r in admin.readings(device_id=fast, keys=["temperature"])
             if r.ts > done.completed_at]
    assert statistics.median(_gaps(before)) == pytest.approx(1.0, abs=0.3)
    assert len(after) >= 10 and statistics.median(_gaps(after)) == pytest.approx(0.2, abs=0.1)
    assert statistics.median(_gaps(list(admin.readings(device_id=steady,
                                                        keys=["temperature"])))) == \
        pytest.approx(1.0, abs=0.3)
    latest = {r.key: r for r in admin.latest(device_id=steady)}
    assert set(latest) == {"temperature", "humidity", "pressure", "light"}
    assert 10 < latest["temperature"].value < 35 and latest["temperature"].unit == "°C"
    assert 0 <= latest["humidity"].value <= 100 and 950 < latest["pressure"].value < 1070


def test_running_again_reuses_the_devices_with_new_keys(server, admin):
    args = [sys.executable, "-m", "telemetra", "simulate", "--url", server.base,
            "--username", ADMIN_USERNAME, "--password", ADMIN_PASSWORD, "--devices", "1",
            "--interval", "0.5", "--prefix", "again", "--duration", "1.5"]
    for _ in range(2):
        done = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert [d["name"] for d in admin.devices(q="again")] == ["again-001"]


def test_a_wrong_password_is_one_line_and_exit_1(server):
    done = subprocess.run([sys.executable, "-m", "telemetra", "simulate", "--url", server.base,
                           "--username", ADMIN_USERNAME, "--password", "wrong-password"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "login as 'root' failed" in done.stderr and "Traceback" not in done.stderr


def test_unknown_commands_and_bad_intervals_fail_with_a_reason(server, device):
    client = DeviceClient(server.base, device.id, device.api_key)
    simulated = SimulatedDevice(client, 5.0, 0.0, Stats(), seed=1)
    assert simulated.handle(Command(1, device.id, "set_interval", {"seconds": 2}))[
        "interval"] == 2.0
    with pytest.raises(ValueError, match="set_interval needs"):
        simulated.handle(Command(2, device.id, "set_interval", {"seconds": "fast"}))
    with pytest.raises(ValueError, match="unknown command 'explode'"):
        simulated.handle(Command(3, device.id, "explode"))
    assert simulated.interval == 2.0
    simulated.tick()
    assert simulated.stats.readings == 4 and simulated.stats.errors == 0
    client.close()
