"""``--target``: choose where a scenario runs from the command line.

Place in the pipeline: the scenario layer, before validation. ``run`` and ``validate`` turn
``--target NAME_OR_URL`` into ``--set`` overrides, so the scenario is validated (and a
remote address refused) exactly as if the file said it. A name picks a target msgstorm
starts itself (``sim``, ``nats``, ``jetstream``, ``redis``, ``zmq``, ``mqtt``, ``rabbitmq``, ``kafka``, ``anvil``, ``cometbft``, or a registered
driver); a URL picks a server the user already runs, its scheme naming the driver (for ZeroMQ, which has
no server, ``tcp://`` names the endpoint msgstorm's publisher binds).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from msgstorm.scenario.refs import did_you_mean, is_loopback_url

__all__ = ["URL_SCHEMES", "target_overrides"]

# URL scheme -> (driver, the scheme the driver's client connects with).
URL_SCHEMES: dict[str, tuple[str, str]] = {
    "nats": ("nats", "nats"),
    "tls": ("nats", "tls"),
    "jetstream": ("jetstream", "nats"),
    "redis": ("redis", "redis"),
    "rediss": ("redis", "rediss"),
    "mqtt": ("mqtt", "mqtt"),
    "rabbitmq": ("rabbitmq", "amqp"),
    "amqp": ("rabbitmq", "amqp"),
    "kafka": ("kafka", "kafka"),  # a bootstrap broker's host:port
    "tcp": ("zmq", "tcp"),  # the endpoint the ZeroMQ publisher binds (there is no server)
    # An EVM node's JSON-RPC (anvil or any node with unlocked accounts); new heads come over
    # WebSocket on the same host and port.
    "http": ("anvil", "http"),
    "ws": ("anvil", "http"),
}


def target_overrides(value: str, allow_remote: bool = False) -> list[str]:
    """The ``--set`` overrides ``--target value`` stands for; ValueError says what is wrong."""
    text = value.strip()
    if "://" not in text:
        if not text or not text.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"--target {value!r}: expected a target name (sim, nats, jetstream, redis, zmq, mqtt, rabbitmq, kafka, anvil, cometbft) "
                             "or a server URL such as nats://127.0.0.1:4222")
        from msgstorm.scenario.registry import (
            TARGETS,  # a built-in name is known without loading it
        )

        if text not in TARGETS:
            known = TARGETS.names()
            raise ValueError(f"--target {value!r}: unknown target{did_you_mean(text, known)}; expected one of "
                             f"{', '.join(known)}, or a server URL ({', '.join(f'{s}://' for s in URL_SCHEMES)})")
        overrides = [f'target="{text}"']
    else:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme in ("ipc", "inproc"):
            raise ValueError(f"--target {value!r}: the ZeroMQ driver binds a TCP endpoint: use "
                             "--target tcp://127.0.0.1:PORT, or --target zmq for a free loopback port")
        if scheme not in URL_SCHEMES:
            schemes = ", ".join(f"{s}://" for s in URL_SCHEMES)
            raise ValueError(f"--target {value!r}: unknown URL scheme {parts.scheme!r}; expected one of {schemes}")
        if not parts.hostname:
            raise ValueError(f"--target {value!r}: the URL names no host")
        driver, client_scheme = URL_SCHEMES[scheme]
        url = parts._replace(scheme=client_scheme).geturl()
        if not allow_remote and not is_loopback_url(url):
            raise ValueError(f"--target {value!r}: not a loopback address; load goes only to 127.0.0.0/8 or ::1 "
                             "unless you pass --allow-remote")
        overrides = [f'target="{driver}"', f'live.url="{url}"']
    if allow_remote:
        overrides.append("live.allow_remote=true")
    return overrides
