"""What a process asks for while it holds live sockets: the writer's readings events only
while a socket subscribes to readings (so with none the writer does not build them), and
other processes' readings only for the organizations those sockets belong to."""

import time

from telemetra.ingest.events import ReadingsCommitted
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME


def _until(check, what: str) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_readings_are_wanted_only_while_a_socket_subscribes_to_them(client, api):
    events = client.app.state.events
    wanted_before = events.wants(ReadingsCommitted)  # others may want them (alert rules)
    token = api.tokens(ADMIN_USERNAME, ADMIN_PASSWORD)["access_token"]
    organization_id = api.get("/auth/me", {"Authorization": f"Bearer {token}"}).json()[
        "organization"]["id"]
    assert events.interest(ReadingsCommitted) == frozenset()
    with client.websocket_connect(f"/api/v1/ws?token={token}") as socket:
        socket.send_json({"type": "subscribe", "topic": "alerts"})
        assert socket.receive_json()["type"] == "subscribed"
        assert events.wants(ReadingsCommitted) == wanted_before  # alerts need no readings
        socket.send_json({"type": "subscribe", "id": "r", "topic": "readings"})
        assert socket.receive_json()["type"] == "subscribed"
        assert events.wants(ReadingsCommitted)
        assert events.interest(ReadingsCommitted) == {organization_id}
        socket.send_json({"type": "unsubscribe", "id": "r"})
        assert socket.receive_json()["type"] == "unsubscribed"
        assert events.wants(ReadingsCommitted) == wanted_before
        assert events.interest(ReadingsCommitted) == frozenset()
        socket.send_json({"type": "subscribe", "topic": "readings"})
        assert socket.receive_json()["type"] == "subscribed"
        socket.close()
        # the socket's end drops its subscriptions
        _until(lambda: events.interest(ReadingsCommitted) == frozenset(),
               "a closed socket's organization is still asked for")
    assert events.wants(ReadingsCommitted) == wanted_before
