"""``telemetra simulate``: a fleet of simulated devices built on the SDK, sending plausible
readings over HTTP or MQTT, honouring commands, with a live progress line."""

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from telemetra.client.device import DeviceClient
from telemetra.client.errors import ApiError, ClientError
from telemetra.client.models import Command, DeviceCredentials
from telemetra.client.retry import Backoff
from telemetra.client.synthetic import Climate
from telemetra.client.user import UserClient

MIN_INTERVAL, MAX_INTERVAL = 0.05, 86_400.0
HEARTBEAT_SECONDS = 60.0


class Transport(StrEnum):
    http = "http"
    mqtt = "mqtt"


@dataclass
class Stats:
    """What the fleet did, for the progress line (updated by every device's thread)."""

    started: float = field(default_factory=time.monotonic)
    readings: int = 0
    errors: int = 0
    commands: int = 0
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)


class SimulatedDevice:
    """One device: every ``interval`` seconds a sample of its ``Climate``, flushed at once; its
    commands fetched at most every ``poll`` seconds over HTTP (pushed over MQTT) and answered:
    ``set_interval`` (``{"seconds": s}``) changes the rate, ``ping`` and ``reboot`` succeed,
    anything else fails as unknown."""

    def __init__(self, client: DeviceClient, interval: float, poll: float, stats: Stats,
                 seed: int, console: Console | None = None) -> None:
        self.client = client
        self.interval = interval
        self.poll = poll
        self.stats = stats
        self.climate = Climate(seed=seed)
        self.console = console
        self._last_poll = self._last_heartbeat = 0.0

    def handle(self, command: Command) -> Any:
        if command.name == "set_interval":
            params = command.params
            seconds = params.get("seconds", params.get("interval", params.get("interval_seconds")))
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not (
                    MIN_INTERVAL <= seconds <= MAX_INTERVAL):
                raise ValueError(f"set_interval needs {{\"seconds\": {MIN_INTERVAL} to "
                                 f"{MAX_INTERVAL:.0f}}}, got {params}")
            previous, self.interval = self.interval, float(seconds)
            if self.console is not None:
                self.console.log(f"device {self.client.device_id}: interval {previous:g}s -> "
                                 f"{self.interval:g}s")
            return {"interval": self.interval, "previous": previous}
        if command.name == "ping":
            return {"pong": datetime.now(UTC).isoformat()}
        if command.name == "reboot":
            return {"rebooted": True}
        raise ValueError(f"unknown command {command.name!r} (the simulator knows set_interval, "
                         "ping, reboot)")

    def tick(self) -> None:
        now = time.monotonic()
        try:
            if now - self._last_heartbeat >= HEARTBEAT_SECONDS:
                self.client.heartbeat(simulated=True)
                self._last_heartbeat = now
            sample = self.climate.sample(datetime.now(UTC))
            self.client.record(sample, units=Climate.UNITS)
            self.stats.add(readings=self.client.flush().sent)
            if now - self._last_poll >= self.poll:
                self._last_poll = now
                handled = self.client.handle_commands(self.handle)
                self.stats.add(commands=len(handled))
        except ClientError as exc:  # buffered readings stay for the next tick
            with self.stats.lock:
                self.stats.errors += 1
                self.stats.last_error = str(exc)[:120]

    def run(self, stop: threading.Event) -> None:
        next_at = time.monotonic()
        while not stop.is_set():
            self.tick()
            next_at += self.interval
            # Fell behind (a slow platform): start again from now, never a burst to catch up.
            next_at = max(next_at, time.monotonic())
            stop.wait(next_at - time.monotonic())


def _progress(stats: Stats, devices: int, transport: Transport) -> Text:
    elapsed = time.monotonic() - stats.started
    rate = stats.readings / elapsed if elapsed > 0 else 0.0
    line = Text.assemble(
        (f"{devices} device{'s' * (devices != 1)}", "bold"), f" ({transport.value}) · ",
        (f"{stats.readings:,}", "cyan"), f" readings, {rate:,.1f}/s · ",
        (f"{stats.errors} errors", "red" if stats.errors else "green"),
        f" · {stats.commands} commands · {int(elapsed // 60):02d}:{int(elapsed % 60):02d}")
    if stats.last_error:
        line.append(f"\nlast error: {stats.last_error}", style="red")
    return line


def _parse_device(text: str) -> DeviceCredentials:
    device_id, sep, key = text.partition(":")
    if not sep or not device_id.strip().isdigit() or not key.strip():
        raise typer.BadParameter(f"expected ID:KEY (e.g. 7:tdk_...), got {text!r}")
    return DeviceCredentials(int(device_id), f"device {device_id}", key.strip())


def provision(api: UserClient, count: int, prefix: str) -> list[DeviceCredentials]:
    """Devices ``<prefix>-001`` ... ``<prefix>-<count>``: registered when missing, else their
    key is rotated (the old one stops working), so running again reuses the same devices."""
    existing = {d["name"]: d for d in api.devices(q=prefix)}
    found: list[DeviceCredentials] = []
    for n in range(1, count + 1):
        name = f"{prefix}-{n:03d}"
        if name in existing:
            found.append(api.rotate_key(existing[name]["id"]))
        else:
            found.append(api.create_device(name, device_type="simulated",
                                           metadata={"simulated": True}))
    return found


def simulate_command(
    devices: Annotated[int, typer.Option("--devices", "-n", min=1, max=10_000,
                                         help="How many devices to create (or reuse)")] = 5,
    interval: Annotated[float, typer.Option(min=MIN_INTERVAL, max=MAX_INTERVAL,
                                            help="Seconds between readings, per device")] = 5.0,
    transport: Annotated[Transport, typer.Option(help="How devices send")] = Transport.http,
    url: Annotated[str, typer.Option(envvar="TELEMETRA_SIM_URL",
                                     help="The platform")] = "http://127.0.0.1:8000",
    username: Annotated[str | None, typer.Option(
        "--username", "--email", "-u", envvar="TELEMETRA_SIM_USERNAME",
        help="Log in as this user (a member or above) to register the devices")] = None,
    password: Annotated[str | None, typer.Option(envvar="TELEMETRA_SIM_PASSWORD",
                                                 help="The user's password")] = None,
    device: Annotated[list[str] | None, typer.Option(
        "--device", help="An existing device as ID:KEY, instead of logging in (repeat "
                         "it; --devices is then ignored)")] = None,
    prefix: Annotated[str, typer.Option(help="Name prefix of the devices registered")] = "sim",
    mqtt_url: Annotated[str, typer.Option(envvar="TELEMETRA_SIM_MQTT_URL",
                                          help="Broker for --transport mqtt (devices log in "
                                               "with their id and key)")
                        ] = "mqtt://127.0.0.1:1883",
    mqtt_prefix: Annotated[str, typer.Option(help="The platform's TELEMETRA_MQTT_PREFIX")
                           ] = "telemetra",
    poll: Annotated[float, typer.Option(min=0.0, help="Seconds between command polls over "
                                                      "HTTP (MQTT commands are pushed)")] = 5.0,
    duration: Annotated[float, typer.Option(min=0.0, help="Stop after this many seconds "
                                                          "(0: until Ctrl-C)")] = 0.0,
) -> None:
    """Simulated devices sending plausible readings (temperature, humidity, pressure, light
    on a daily cycle with noise) and answering commands (set_interval, ping, reboot).

    Either log in (--username or --email, and --password) and the devices <prefix>-001...
    are registered, or reused with a new key; or give existing devices with --device ID:KEY.
    """
    console = Console(stderr=True)
    try:
        credentials = _credentials(url, devices, username, password, device, prefix)
    except ClientError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    ids = [c.id for c in credentials]
    console.print(f"{len(ids)} device(s), ids {', '.join(map(str, ids[:10]))}"
                  f"{' ...' if len(ids) > 10 else ''}: readings every {interval:g}s to {url}"
                  f"{' through ' + mqtt_url if transport is Transport.mqtt else ''}; Ctrl-C "
                  "stops")
    stats, stop = Stats(), threading.Event()
    http = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=min(100, len(
        credentials))))
    if transport is Transport.mqtt:
        poll = 0.0  # commands are pushed: looking at what arrived costs nothing
    fleet = [SimulatedDevice(_client(c, transport, url, mqtt_url, mqtt_prefix, http), interval,
                             poll, stats, seed=c.id, console=console)
             for c in credentials]
    threads = [threading.Thread(target=d.run, args=(stop,), daemon=True,
                                name=f"sim-{d.client.device_id}") for d in fleet]
    ended = time.monotonic() + duration if duration else None
    with Live(_progress(stats, len(fleet), transport), console=console,
              refresh_per_second=4) as live:
        for thread in threads:
            thread.start()
        try:
            while ended is None or time.monotonic() < ended:
                time.sleep(0.25)
                live.update(_progress(stats, len(fleet), transport))
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            for thread in threads:
                thread.join(15)
            for simulated in fleet:
                simulated.client.close()
            http.close()
            live.update(_progress(stats, len(fleet), transport))


def _credentials(url: str, count: int, username: str | None, password: str | None,
                 devices: list[str] | None, prefix: str) -> list[DeviceCredentials]:
    if devices:
        return [_parse_device(text) for text in devices]
    if not username or not password:
        raise typer.BadParameter("log in with --username and --password (or "
                                 "TELEMETRA_SIM_USERNAME/TELEMETRA_SIM_PASSWORD), or give "
                                 "--device ID:KEY")
    with UserClient(url) as api:
        try:
            api.login(username, password)
        except ApiError as exc:
            raise ClientError(f"login as {username!r} failed: {exc.detail}") from None
        return provision(api, count, prefix)


def _client(credentials: DeviceCredentials, transport: Transport, url: str, mqtt_url: str,
            mqtt_prefix: str, http: httpx.Client) -> DeviceClient:
    # A few quick retries: what stays unsent is tried again on the next tick, times kept.
    backoff = Backoff(attempts=3, base=0.25, cap=2.0)
    if transport is Transport.mqtt:
        return DeviceClient.over_mqtt(mqtt_url, credentials.id, credentials.api_key,
                                      prefix=mqtt_prefix, backoff=backoff)
    return DeviceClient(url, credentials.id, credentials.api_key, backoff=backoff, http=http)


__all__ = ["SimulatedDevice", "provision", "simulate_command"]
