"""The messages of a live socket (API.md, WebSocket): what clients send, parsed strictly."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

TOPICS = ("readings", "device-status", "alerts", "commands")
Topic = Literal["readings", "device-status", "alerts", "commands"]
# Bounds on what one socket may ask for: a client cannot make the server hold unbounded state.
MAX_SUBSCRIPTIONS = 100
MAX_KEYS = 100
MAX_MESSAGE_CHARS = 16_384

SubscriptionId = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]


class ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Auth(ClientMessage):
    """The access token, as the first message (or again later, to go on past its expiry)."""

    type: Literal["auth"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class Subscribe(ClientMessage):
    """Events of one topic, for one device, site or group (or the whole organization), and
    for readings and alerts, only some keys."""

    type: Literal["subscribe"]
    id: SubscriptionId | None = Field(default=None, description="The client's name for it; "
                                      "given by the server (s1, s2, ...) when left out")
    topic: Topic
    device_id: Id | None = None
    site_id: Id | None = None
    group_id: Id | None = None
    keys: Annotated[list[Key], Field(min_length=1, max_length=MAX_KEYS)] | None = None


class Unsubscribe(ClientMessage):
    type: Literal["unsubscribe"]
    id: SubscriptionId


class Ping(ClientMessage):
    type: Literal["ping"]


client_message = TypeAdapter(Annotated[Auth | Subscribe | Unsubscribe | Ping,
                                       Field(discriminator="type")])
