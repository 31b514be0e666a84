"""A device made before MQTT was turned on has no broker login (only a hash of its key is
stored): the log says exactly what to do, and the first HTTP request with its key makes it."""

import logging

from fastapi.testclient import TestClient

from telemetra.app import create_app
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, make_settings
from tests.helpers import Api, device_key
from tests.mosquitto import refused_login
from tests.mqtt.conftest import eventually, start_platform


def test_devices_made_before_mqtt_get_their_login_from_their_key(database_url, dynsec_broker,
                                                                  caplog):
    with TestClient(create_app(make_settings(database_url))) as without_mqtt:
        api = Api(without_mqtt)
        root = api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        by_heartbeat, by_readings = api.device(root), api.device(root)

    caplog.set_level(logging.INFO, logger="telemetra.mqtt.dynsec")
    client = start_platform(database_url, dynsec_broker)
    try:
        api = Api(client)
        warning = eventually(lambda: next((record.getMessage() for record in caplog.records
                                           if "no broker login" in record.getMessage()), None))
        assert f"{by_heartbeat['id']}, {by_readings['id']}" in warning
        assert "made before MQTT was turned on" in warning
        assert "a heartbeat will do" in warning and "rotate-key" in warning
        assert "unreachable): " not in warning  # not blamed on the broker alone any more
        for device in (by_heartbeat, by_readings):
            assert refused_login(dynsec_broker, str(device["id"]), device["api_key"])

        beat = api.post(f"/devices/{by_heartbeat['id']}/heartbeat",
                        device_key(by_heartbeat["api_key"]), json={})
        assert beat.status_code == 200, beat.text
        eventually(lambda: not refused_login(dynsec_broker, str(by_heartbeat["id"]),
                                             by_heartbeat["api_key"]))
        # The ingest fast path does the same.
        sent = api.post("/readings", device_key(by_readings["api_key"]), json={"t": 1})
        assert sent.status_code == 202, sent.text
        eventually(lambda: not refused_login(dynsec_broker, str(by_readings["id"]),
                                             by_readings["api_key"]))
        assert refused_login(dynsec_broker, str(by_readings["id"]), by_heartbeat["api_key"])
    finally:
        client.__exit__(None, None, None)
