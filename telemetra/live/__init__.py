"""Live data over WebSockets: readings, device status, alerts and commands as they commit.

``endpoints`` turns a socket into an authenticated ``Connection`` and reads its messages;
``hub`` holds every connection's subscriptions and fans committed events (``kit.events``) out
to them; ``outbox`` is a connection's bounded queue and sender; ``directory`` caches what the
events do not carry (a sensor's key and unit, a device's site and groups).
"""
