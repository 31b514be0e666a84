"""Throwaway Mosquitto 2 brokers for the MQTT tests, and a small device client.

Each broker runs in its own directory on a free port, with persistence on (so a restart keeps
sessions and queued messages) and ``max_queued_messages`` set deliberately: at Mosquitto's
default of 1000 it silently drops QoS 1 messages queued for a subscriber that falls behind.
With ``dynsec=True`` it loads the dynamic security plugin, initialised with an admin login
that the platform uses.
"""

import getpass
import glob
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.server import free_port

ADMIN_USER = "telemetra-platform"
ADMIN_PASSWORD = "platform-password-for-tests"
PLUGIN_GLOBS = ("/usr/lib/*/mosquitto_dynamic_security.so", "/usr/lib/mosquitto_dynamic_security.so",
                "/usr/local/lib/mosquitto_dynamic_security.so")


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                          if os.path.exists("/usr/sbin/mosquitto") else None)
    if found is None:
        raise RuntimeError("mosquitto is not installed; `make system-deps` installs it")
    return found


def dynsec_plugin() -> str:
    for pattern in PLUGIN_GLOBS:
        for path in glob.glob(pattern):
            return path
    raise RuntimeError("mosquitto's dynamic security plugin was not found")


class Broker:
    def __init__(self, directory: Path, *, dynsec: bool = False,
                 max_queued_messages: int = 1_000_000) -> None:
        self.directory = directory
        self.dynsec = dynsec
        self.port = free_port()
        self.max_queued_messages = max_queued_messages
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if dynsec else 'true'}",
            "persistence true",
            f"persistence_location {directory}/",
            f"max_queued_messages {max_queued_messages}",
            f"log_dest file {directory}/mosquitto.log",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
        ]
        if os.geteuid() == 0:  # otherwise mosquitto drops to a user that cannot write here
            lines.append(f"user {getpass.getuser()}")
        if dynsec:
            config = directory / "dynamic-security.json"
            subprocess.run(["mosquitto_ctrl", "dynsec", "init", str(config), ADMIN_USER,
                            ADMIN_PASSWORD], check=True, capture_output=True)
            lines += [f"plugin {dynsec_plugin()}", f"plugin_opt_config_file {config}"]
        (directory / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        if self.dynsec:
            return f"mqtt://{ADMIN_USER}:{ADMIN_PASSWORD}@127.0.0.1:{self.port}"
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10) -> None:
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("mosquitto exited: " + self.log()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start: " + self.log()[-2000:])

    def stop(self) -> None:
        """A clean stop: Mosquitto saves its sessions and queued messages."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Device:
    """A device (or any client) speaking MQTT 5 to a test broker, synchronously."""

    def __init__(self, broker: Broker, *, username: str | None = None,
                 password: str | None = None, client_id: str | None = None,
                 will: tuple[str, bytes] | None = None, clean_start: bool = True) -> None:
        self.messages: queue.Queue = queue.Queue()
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-{uuid.uuid4().hex[:10]}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0 if clean_start else 3600
        self.client.connect("127.0.0.1", broker.port, keepalive=5, clean_start=clean_start,
                            properties=properties)
        self.client.loop_start()
        deadline = time.monotonic() + 5
        while not self.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)

    @property
    def connected(self) -> bool:
        return self.client.is_connected()

    def publish(self, topic: str, payload, qos: int = 1, timeout: float = 5):
        """Publish and wait for the broker's PUBACK; returns the MessageInfo (its rc says
        whether the broker accepted it)."""
        if not isinstance(payload, bytes | str):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout)
        return info

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.client.subscribe(topic, qos=qos)
        time.sleep(0.2)

    def next_message(self, timeout: float = 5) -> tuple[str, bytes]:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def refused_login(broker: Broker, username: str, password: str) -> bool:
    """Whether the broker refuses this login (CONNACK not authorised)."""
    result: dict = {}
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(username, password)
    client.on_connect = lambda c, u, f, rc, p: result.setdefault("rc", rc)
    client.connect("127.0.0.1", broker.port, keepalive=5)
    client.loop_start()
    deadline = time.monotonic() + 5
    while "rc" not in result and time.monotonic() < deadline:
        time.sleep(0.02)
    client.disconnect()
    client.loop_stop()
    return "rc" not in result or result["rc"].is_failure
