"""A broker the user runs (``live.url``), watched for its loss while the run goes.

Place in the pipeline: ``live/target.py`` asks it. A server msgstorm starts is a process it
watches; a user's is only an address, so its loss is told apart from a moment's trouble
(a toxic on the link, a stalled server, a client that dropped its connection) the way
``live/chain/sending.py`` tells a user's node: after a client lost its connection, a new
connection to the server's own address (not through the fault proxy) that is refused is the
server gone, once every probe for ``GONE_AFTER_S`` was refused: a server restarted on its
port comes back within it, and its clients reconnect (a reconnection, not a loss). One that
takes the connection, or does not answer within a second (a stopped process still takes
connections into its backlog), is still there. The target names the loss once
(``node_down``, its URL in the detail) and ends the sending, as for a chain node.

Only addresses a server listens on are watched: ``nats://``, ``tls://``, ``jetstream://``,
``redis://`` and ``rediss://`` (their default ports when none is given); a ``tcp://`` URL is
the endpoint msgstorm's own ZeroMQ publisher binds, which no one else can lose.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

__all__ = ["GONE_AFTER_S", "PROBE_TIMEOUT_S", "refused_by", "watched_address"]

# How long every probe must be refused before the server counts as gone: a server restarted
# on its port (a restart takes a few hundred ms) is back within it.
GONE_AFTER_S = 1.5

# How long a new connection may take before the server counts as there (a stopped process
# still takes connections into its backlog).
PROBE_TIMEOUT_S = 1.0
# The port a broker's URL means when it names none.
_DEFAULT_PORTS = {"nats": 4222, "tls": 4222, "jetstream": 4222, "redis": 6379, "rediss": 6379}


def watched_address(url: str | None) -> tuple[str, int] | None:
    """(host, port) of the server ``url`` (``live.url``) names, or None when there is none to
    watch (no URL: msgstorm starts the server and watches its process; ``tcp://``: msgstorm
    binds it)."""
    if url is None:
        return None
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or not parts.hostname:
        return None
    return parts.hostname, parts.port or default


async def refused_by(address: tuple[str, int], timeout_s: float = PROBE_TIMEOUT_S) -> OSError | None:
    """The error of a new connection to ``address`` when it is refused (the server is gone),
    None when the connection is taken or not answered within ``timeout_s``."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(*address), timeout_s)
    except TimeoutError:
        return None
    except OSError as refused:
        return refused
    writer.close()
    return None
