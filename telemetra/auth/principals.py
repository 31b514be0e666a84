"""Who is asking, as plain objects: a user or a device. Framework-free (STYLE 12): HTTP
dependencies, the MQTT consumer and later the WebSocket handler each turn their credential
into one of these, and services take them without knowing the transport."""

from dataclasses import dataclass

from telemetra.auth.roles import Role

DEVICE_KEY_PREFIX = "tdk_"
DEVICE_KEY_LOOKUP_CHARS = 12  # "tdk_" + 8 random characters, stored in clear to find the row


@dataclass(frozen=True)
class AuthUser:
    id: int
    organization_id: int
    username: str
    role: Role
    is_superadmin: bool
    session_id: str  # the refresh-token family the access token was issued with


@dataclass(frozen=True)
class AuthDevice:
    id: int
    organization_id: int
    status: str
