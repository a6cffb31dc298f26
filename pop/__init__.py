"""The edge POP role: viewer admission, upstream selection, re-routing, workers.

:class:`PopNode` runs one POP (or one worker of ``clutchcall pop --workers N``).
"""

from mesh.advertise import AdvertiseError, advertised_host

from ._admission import Gatekeeper, SessionAuth, hop_path_from, namespace_text
from ._listen import bind_udp, serve_socket
from ._node import PopNode, PopStatistics
from ._relay import PopRelay
from ._routing import Router
from ._upstream import LinkKey, UpstreamLink, UpstreamPool, UpstreamUnavailable

__all__ = [
    "AdvertiseError",
    "Gatekeeper",
    "LinkKey",
    "PopNode",
    "PopRelay",
    "PopStatistics",
    "Router",
    "SessionAuth",
    "UpstreamLink",
    "UpstreamPool",
    "UpstreamUnavailable",
    "advertised_host",
    "bind_udp",
    "hop_path_from",
    "namespace_text",
    "serve_socket",
]
