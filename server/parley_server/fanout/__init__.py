"""Fan-out of pushed frames to connected devices: Broker interface and its engines."""

from parley_server.fanout.base import Broker, Subscriber
from parley_server.fanout.local import LocalBroker

__all__ = ["Broker", "LocalBroker", "Subscriber"]
