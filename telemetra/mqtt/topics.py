"""The platform's MQTT topics in one place: what it subscribes to, publishes, and how an
uplink topic names its device."""

from dataclasses import dataclass

UPLINK_KINDS = ("readings", "heartbeat", "logs", "status")
MAX_DEVICE_ID_DIGITS = 12


@dataclass(frozen=True, slots=True)
class Uplink:
    """What a device's topic says: the device, the kind of message and, for a command
    result, the command."""

    kind: str  # readings, heartbeat, logs, status or result
    device_id: int
    command_id: int | None = None


def _id(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > MAX_DEVICE_ID_DIGITS:
        return None
    return int(text)


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    share_group: str

    def uplink_filters(self) -> list[str]:
        """The filters the platform consumes, shared between its processes."""
        base = f"{self.prefix}/devices/+"
        return [self.shared(f"{base}/{kind}") for kind in UPLINK_KINDS] + [
            self.shared(f"{base}/commands/+/result")]

    def shared(self, topic_filter: str) -> str:
        return f"$share/{self.share_group}/{topic_filter}"

    def commands(self, device_id: int) -> str:
        return f"{self.prefix}/devices/{device_id}/commands"

    def device_tree(self, device_id: int) -> str:
        """Everything under a device's own topics (its broker ACL)."""
        return f"{self.prefix}/devices/{device_id}/#"

    @property
    def connectors_changed(self) -> str:
        """Every platform process (not shared) re-reads its connector subscriptions when a
        message arrives here."""
        return f"{self.prefix}/platform/connectors-changed"

    def parse(self, topic: str) -> Uplink | None:
        """The uplink a topic is, or None when it is not one of the platform's."""
        parts = topic.split("/")
        if len(parts) < 4 or parts[0] != self.prefix or parts[1] != "devices":
            return None
        device_id = _id(parts[2])
        if device_id is None:
            return None
        if len(parts) == 4 and parts[3] in UPLINK_KINDS:
            return Uplink(parts[3], device_id)
        if len(parts) == 6 and parts[3] == "commands" and parts[5] == "result":
            command_id = _id(parts[4])
            if command_id is not None:
                return Uplink("result", device_id, command_id)
        return None
