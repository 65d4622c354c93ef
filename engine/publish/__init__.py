"""The publish stage: events out over ZeroMQ (XPUB, contract v2) and into the JSON-lines journal.

>>> from engine.publish import ZmqPublisher, PublishConfig  # doctest: +SKIP
"""

from engine.publish.config import PublishConfig
from engine.publish.journal import Journal, read_lines, segments
from engine.publish.zmq_publisher import LOSSABLE_TYPES, PublishStats, ZmqPublisher, is_loopback

__all__ = [
    "LOSSABLE_TYPES",
    "Journal",
    "PublishConfig",
    "PublishStats",
    "ZmqPublisher",
    "is_loopback",
    "read_lines",
    "segments",
]
