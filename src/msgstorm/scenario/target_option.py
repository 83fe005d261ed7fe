"""``--target``: choose where a scenario runs from the command line.

Place in the pipeline: the scenario layer, before validation. ``run`` and ``validate`` turn
``--target NAME_OR_URL`` into ``--set`` overrides, so the scenario is validated (and a
remote address refused) exactly as if the file said it. A name picks a target msgstorm
starts itself (``sim``, ``nats``, ``jetstream``, ``redis``, ``zmq``, ``mqtt``, ``rabbitmq``, ``kafka``, ``anvil``, ``cometbft``, or a registered
driver); a URL picks a server the user already runs, its scheme naming the target: each
target declares its own schemes (``Target.url_schemes``: a driver's ``url_schemes``, beside
its client; for ZeroMQ, which has no server, ``tcp://`` names the endpoint msgstorm's
publisher binds). A name is known without loading its target; a URL loads the targets to
ask them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from msgstorm.scenario.refs import did_you_mean, is_loopback_url
from msgstorm.scenario.registry import TARGETS

__all__ = ["target_overrides", "url_schemes"]


def url_schemes() -> dict[str, tuple[str, str]]:
    """URL scheme -> (the target it picks, the scheme that target's client connects with),
    as each target declares; a scheme two declare is the first's (a built-in before an
    extension, which may extend a built-in driver)."""
    schemes: dict[str, tuple[str, str]] = {}
    for name in TARGETS:
        for scheme, client_scheme in TARGETS[name].url_schemes().items():
            schemes.setdefault(scheme, (name, client_scheme))
    return schemes


def target_overrides(value: str, allow_remote: bool = False) -> list[str]:
    """The ``--set`` overrides ``--target value`` stands for; ValueError says what is wrong."""
    text = value.strip()
    if "://" not in text:
        if not text or not text.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"--target {value!r}: expected a target name (sim, nats, jetstream, redis, zmq, mqtt, rabbitmq, kafka, anvil, cometbft) "
                             "or a server URL such as nats://127.0.0.1:4222")
        if text not in TARGETS:  # a built-in name is known without loading it
            known = TARGETS.names()
            raise ValueError(f"--target {value!r}: unknown target{did_you_mean(text, known)}; expected one of "
                             f"{', '.join(known)}, or a server URL ({', '.join(f'{s}://' for s in url_schemes())})")
        overrides = [f'target="{text}"']
    else:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme in ("ipc", "inproc"):
            raise ValueError(f"--target {value!r}: the ZeroMQ driver binds a TCP endpoint: use "
                             "--target tcp://127.0.0.1:PORT, or --target zmq for a free loopback port")
        schemes = url_schemes()
        if scheme not in schemes:
            listed = ", ".join(f"{s}://" for s in schemes)
            raise ValueError(f"--target {value!r}: unknown URL scheme {parts.scheme!r}; expected one of {listed}")
        if not parts.hostname:
            raise ValueError(f"--target {value!r}: the URL names no host")
        target, client_scheme = schemes[scheme]
        url = parts._replace(scheme=client_scheme).geturl()
        if not allow_remote and not is_loopback_url(url):
            raise ValueError(f"--target {value!r}: not a loopback address; load goes only to 127.0.0.0/8 or ::1 "
                             "unless you pass --allow-remote")
        overrides = [f'target="{target}"', f'live.url="{url}"']
    if allow_remote:
        overrides.append("live.allow_remote=true")
    return overrides
