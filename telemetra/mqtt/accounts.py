"""Device identity at the broker, through Mosquitto's dynamic security plugin.

Each device gets a broker login (username = device id, password = its key) and a role of its
own that lets it publish and subscribe only under ``{prefix}/devices/{id}/``. Operations are
sent in order on ``$CONTROL/dynamic-security/v1`` and confirmed on its response topic; while
the broker is unreachable they wait in memory and go out on reconnection. At each connection
the broker's clients are reconciled with the devices table (deleted devices removed, inactive
ones disabled). Keys are stored only as hashes, so a device without a login (made before
MQTT was turned on, or while the broker was unreachable and the platform restarted) gets one
the first time it shows its key over HTTP (``key_seen``), or when its key is rotated; until
then the log names it and says so.
"""

import asyncio
import itertools
import logging
from dataclasses import dataclass

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from telemetra.db.tables import devices
from telemetra.mqtt.topics import Topics

log = logging.getLogger("telemetra.mqtt.dynsec")

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = "$CONTROL/dynamic-security/v1/response"
RESPONSE_TIMEOUT_SECONDS = 10.0
# Errors that mean "already as wanted": operations are idempotent.
_HARMLESS = ("not found", "already exists")


@dataclass(frozen=True, slots=True)
class Operation:
    kind: str  # provision, enable, disable, remove, reconcile
    device_id: int = 0
    key: str | None = None
    active: bool = True

    def __repr__(self) -> str:  # the key never reaches a log
        return f"Operation({self.kind}, device={self.device_id})"


class BrokerAccounts:
    def __init__(self, engine: AsyncEngine, topics: Topics, publish, connected,
                 own_username: str | None) -> None:
        self.engine = engine
        self.own_username = own_username
        self.topics = topics
        self._publish = publish
        self._connected = connected  # () -> bool
        self._queue: asyncio.Queue[Operation] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._online = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.failures = 0
        # Devices the last reconciliation found without a broker login: their keys are only
        # stored hashed, so each gets one when it next shows its key (``key_seen``).
        self.without_login: set[int] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt-dynsec")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- what the platform asks for ------------------------------------------------------

    def provision(self, device_id: int, key: str, *, active: bool = True) -> None:
        """A new device or a rotated key: (re)create its login; the old key stops working."""
        self._queue.put_nowait(Operation("provision", device_id, key, active))

    def key_seen(self, device_id: int, key: str) -> None:
        """A device's key, verified (an HTTP request of an active device): if the device has
        no broker login, make it one with that key. A set lookup on every device request."""
        if device_id in self.without_login:
            self.without_login.discard(device_id)
            log.info("device %s showed its key over HTTP: provisioning its broker login",
                     device_id)
            self.provision(device_id, key)

    def set_active(self, device_id: int, active: bool) -> None:
        self._queue.put_nowait(Operation("enable" if active else "disable", device_id))

    def remove(self, device_id: int) -> None:
        self._queue.put_nowait(Operation("remove", device_id))

    def connected(self) -> None:
        """The link (re)connected: reconcile, then send whatever waited."""
        self._online.set()
        self._queue.put_nowait(Operation("reconcile"))

    def disconnected(self) -> None:
        self._online.clear()

    def on_response(self, payload: bytes) -> None:
        try:
            responses = orjson.loads(payload).get("responses", [])
        except (orjson.JSONDecodeError, AttributeError):
            log.warning("unreadable dynamic-security response")
            return
        for response in responses:
            future = self._waiting.pop(str(response.get("correlationData")), None)
            if future is not None and not future.done():
                future.set_result(response)

    # -- sending -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            operation = await self._queue.get()
            while True:
                await self._online.wait()
                try:
                    await self._apply(operation)
                    break
                except TimeoutError:
                    self.failures += 1
                    log.warning("broker did not answer %r in time; retrying", operation)
                    await asyncio.sleep(1)

    async def _command(self, commands: list[dict]) -> list[dict]:
        futures = []
        loop = asyncio.get_running_loop()
        for command in commands:
            correlation = str(next(self._ids))
            command["correlationData"] = correlation
            future = loop.create_future()
            self._waiting[correlation] = future
            futures.append(future)
        self._publish(CONTROL_TOPIC, orjson.dumps({"commands": commands}))
        try:
            async with asyncio.timeout(RESPONSE_TIMEOUT_SECONDS):
                responses = await asyncio.gather(*futures)
        finally:
            for command in commands:
                self._waiting.pop(command["correlationData"], None)
        for command, response in zip(commands, responses, strict=True):
            error = response.get("error")
            if error and not any(text in error.lower() for text in _HARMLESS):
                self.failures += 1
                log.warning("broker refused %s for %s: %s", command["command"],
                            command.get("username") or command.get("rolename"), error)
        return responses

    def _role(self, device_id: int) -> str:
        return f"{self.topics.prefix}-device-{device_id}"

    async def _apply(self, operation: Operation) -> None:
        username = str(operation.device_id)
        if operation.kind == "reconcile":
            await self._reconcile()
        elif operation.kind == "provision":
            tree = self.topics.device_tree(operation.device_id)
            acls = [{"acltype": acltype, "topic": tree, "priority": 0, "allow": True}
                    for acltype in ("publishClientSend", "publishClientReceive",
                                    "subscribePattern", "unsubscribePattern")]
            commands = [
                {"command": "deleteClient", "username": username},
                {"command": "createRole", "rolename": self._role(operation.device_id),
                 "acls": acls},
                {"command": "createClient", "username": username, "password": operation.key,
                 "roles": [{"rolename": self._role(operation.device_id)}]},
            ]
            if not operation.active:
                commands.append({"command": "disableClient", "username": username})
            await self._command(commands)
            log.info("broker login provisioned for device %s", operation.device_id)
        elif operation.kind in ("enable", "disable"):
            await self._command([{"command": f"{operation.kind}Client", "username": username}])
        elif operation.kind == "remove":
            await self._command([{"command": "deleteClient", "username": username},
                                 {"command": "deleteRole",
                                  "rolename": self._role(operation.device_id)}])

    async def _grant_platform(self) -> None:
        """The admin role ``mosquitto_ctrl dynsec init`` creates may manage the broker but not
        publish on ordinary topics: give the platform's own roles the right to publish under
        its prefix (commands to devices, notices to the other platform processes)."""
        if self.own_username is None:
            return
        [response] = await self._command([{"command": "getClient",
                                           "username": self.own_username}])
        roles = [role.get("rolename") for role in
                 response.get("data", {}).get("client", {}).get("roles", [])]
        grants = [{"command": "addRoleACL", "rolename": role, "acltype": "publishClientSend",
                   "topic": f"{self.topics.prefix}/#", "priority": 0, "allow": True}
                  for role in roles if role]
        if grants:
            await self._command(grants)

    async def _reconcile(self) -> None:
        await self._grant_platform()
        [response] = await self._command([{"command": "listClients", "verbose": True,
                                           "count": -1, "offset": 0}])
        clients = {c["username"]: c for c in response.get("data", {}).get("clients", [])
                   if isinstance(c, dict) and str(c.get("username", "")).isdigit()}
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(devices.c.id, devices.c.status))).all()
        known = {str(row.id): row.status for row in rows}
        commands: list[dict] = []
        for username, client in clients.items():
            status = known.get(username)
            if status is None:
                commands += [{"command": "deleteClient", "username": username},
                             {"command": "deleteRole", "rolename": self._role(int(username))}]
            elif (status == "inactive") != bool(client.get("disabled")):
                verb = "disableClient" if status == "inactive" else "enableClient"
                commands.append({"command": verb, "username": username})
        if commands:
            await self._command(commands)
        missing = sorted(int(u) for u in known if u not in clients)
        self.without_login = set(missing)
        if missing:
            log.warning(
                "%d device(s) have no broker login yet, so cannot connect over MQTT: %s. They "
                "were made before MQTT was turned on (or while the broker was unreachable, "
                "and Telemetra restarted); only a hash of each key is stored, so the login is "
                "made the next time the device sends anything over HTTP with its key (a "
                "heartbeat will do), or at once by rotating its key (POST "
                "/api/v1/devices/{id}/rotate-key; the old key then stops working)",
                len(missing), ", ".join(map(str, missing[:50])) + (
                    ", ..." if len(missing) > 50 else ""))
