"""Which topics are the platform's, and how a topic filter matches (pure functions)."""

import pytest
from paho.mqtt.client import topic_matches_sub

from telemetra.mqtt.topics import Topics, Uplink

TOPICS = Topics("telemetra", "telemetra")


@pytest.mark.parametrize("topic, expected", [
    ("telemetra/devices/7/readings", Uplink("readings", 7)),
    ("telemetra/devices/7/heartbeat", Uplink("heartbeat", 7)),
    ("telemetra/devices/7/logs", Uplink("logs", 7)),
    ("telemetra/devices/7/status", Uplink("status", 7)),
    ("telemetra/devices/7/commands/42/result", Uplink("result", 7, 42)),
    ("telemetra/devices/7/commands", None),  # the platform's own downlink
    ("telemetra/devices/7/commands/x/result", None),
    ("telemetra/devices/-7/readings", None),
    ("telemetra/devices/٧/readings", None),  # a non-ASCII digit is no device id
    ("telemetra/devices/1234567890123/readings", None),
    ("telemetra/devices/7/readings/extra", None),
    ("other/devices/7/readings", None),
    ("sensor/data", None),
])
def test_uplink_topics_name_their_device(topic, expected):
    assert TOPICS.parse(topic) == expected


def test_the_platform_consumes_shared_subscriptions_and_never_its_downlink():
    filters = TOPICS.uplink_filters()
    assert all(f.startswith("$share/telemetra/telemetra/devices/+/") for f in filters)
    assert not any(f.endswith("/commands") for f in filters)


@pytest.mark.parametrize("topic_filter, topic, expected", [
    ("sensor/data", "sensor/data", True),
    ("sensor/data", "sensor/data/x", False),
    ("site/+/data", "site/7/data", True),
    ("site/+/data", "site/7/8/data", False),
    ("site/#", "site", True),
    ("site/#", "site/7/data", True),
    ("+/data", "sensor/data", True),
    ("a/b", "a", False),
])
def test_topic_filters_match_as_mqtt_says(topic_filter, topic, expected):
    # The consumer routes connector topics with paho's matcher: what it must mean for them.
    assert topic_matches_sub(topic_filter, topic) is expected
