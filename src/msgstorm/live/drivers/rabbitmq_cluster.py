"""A RabbitMQ cluster msgstorm starts itself: ``live.rabbitmq.nodes`` nodes on loopback.

Place in the pipeline: under ``drivers/rabbitmq.py``, which starts the nodes a run needs and
joins them before its clients connect (``join``).

Node ``rabbit-<i>`` is the Erlang node ``msgstorm-<amqp port>@localhost`` with its own AMQP
port, distribution port, database and log under ``RUN_DIR/servers/rabbitmq/``; every node and
``rabbitmqctl`` share one Erlang cookie, new each run (``HOME`` is that directory). The
configuration sets ``cluster_partition_handling`` and the Erlang VM ``net_ticktime``
(``NET_TICKTIME_S``: a node silent that long is down, so a partition is seen in seconds).

The routes between nodes: Erlang distribution asks the port mapper (``epmd``) where a node
listens. Each node loads an Erlang module of msgstorm's (``EPMD_MODULE``, compiled with
``erlc`` into the run directory, ``-epmd_module``) that answers from its command line
(``-msgstorm_dist name:port,...``) instead: its own distribution port for itself and, for each
other node, the port node ``i`` dials to reach node ``j``. With routes through the fault proxy
(a ``partition``), that port is the proxy's listener ``route-<i>-<j>``, which leads to ``j``'s
distribution port; so every connection between two nodes passes the proxy, and a partition
cuts it. The module still registers each node with the run's own ``epmd`` (``rabbitmq.py``'s
``start_epmd``, on a free port every node and ``rabbitmqctl`` are given as ``ERL_EPMD_PORT``):
RabbitMQ reads its own port back from it at boot, and ``rabbitmqctl`` finds the nodes there,
directly.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path

from msgstorm.live.servers import ServerError, free_port
from msgstorm.processes import die_with_parent

__all__ = ["EPMD_MODULE", "NET_TICKTIME_S", "cluster_config", "dist_map", "join", "mirror", "mirror_pattern", "plan_nodes"]

NET_TICKTIME_S = 5
JOIN_TIMEOUT_S = 120.0
# Distribution without the port mapper's answers: each node's port from -msgstorm_dist.
EPMD_MODULE = """\
-module(msgstorm_epmd).
-export([start_link/0, register_node/2, register_node/3, port_please/2, port_please/3,
         listen_port_please/2, address_please/3, names/1]).

start_link() -> erl_epmd:start_link().
register_node(Name, Port) -> erl_epmd:register_node(Name, Port).
register_node(Name, Port, Driver) -> erl_epmd:register_node(Name, Port, Driver).
listen_port_please(Name, Host) ->
    case port_of(Name) of
        undefined -> erl_epmd:listen_port_please(Name, Host);
        Port -> {ok, Port}
    end.
port_please(Name, Host) -> port_please(Name, Host, infinity).
port_please(Name, Host, Timeout) ->
    case port_of(Name) of
        undefined -> erl_epmd:port_please(Name, Host, Timeout);
        Port -> {port, Port, 6}
    end.
address_please(Name, Host, Family) -> erl_epmd:address_please(Name, Host, Family).
names(Host) -> erl_epmd:names(Host).

port_of(Name) ->
    Key = if is_atom(Name) -> atom_to_list(Name); true -> Name end,
    Short = hd(string:split(Key, "@")),
    case init:get_argument(msgstorm_dist) of
        {ok, [[Spec | _] | _]} ->
            Pairs = [string:split(P, ":") || P <- string:split(Spec, ",", all)],
            case [list_to_integer(Port) || [N, Port] <- Pairs, N =:= Short] of
                [Port | _] -> Port;
                [] -> undefined
            end;
        _ -> undefined
    end.
"""


def cluster_config(handling: str) -> str:
    """A cluster node's ``rabbitmq.conf`` lines past the single node's: how it handles a partition."""
    return f"cluster_partition_handling = {handling}\n"


def dist_map(i: int, short_names: list[str], dist_ports: list[int], routes: dict[tuple[int, int], int]) -> str:
    """Node ``i``'s ``-msgstorm_dist``: its own distribution port, and for each other node
    ``j`` the port it dials (the proxy's ``route-i-j`` when routes go through the proxy)."""
    return ",".join(f"{name}:{dist_ports[j] if j == i else routes.get((i, j), dist_ports[j])}"
                    for j, name in enumerate(short_names))


def _compile_epmd_module(directory: Path) -> None:
    erlc = shutil.which("erlc")
    if erlc is None:
        raise ServerError("erlc not found: a RabbitMQ cluster compiles a module of msgstorm's (apt-get install "
                          "erlang-base, which rabbitmq-server depends on)")
    (directory / "msgstorm_epmd.erl").write_text(EPMD_MODULE, encoding="utf-8")
    # Run in ``directory`` on the bare file name: the compiler shortens a source path that
    # starts with its working directory's path by the string, not by whole path components
    # (OTP's ``compile:shorten_filename``), so ``/x/proj-runs/...`` compiled from ``/x/proj``
    # became ``-runs/...``, a file it could not find. Its errors go to stdout.
    done = subprocess.run([erlc, "-o", ".", "msgstorm_epmd.erl"], cwd=directory, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120, check=False, preexec_fn=die_with_parent)
    if done.returncode != 0:
        said = done.stdout.strip()[-500:] or "it printed nothing"
        raise ServerError(f"erlc msgstorm_epmd.erl in {directory} failed (code {done.returncode}): {said}")


def plan_nodes(count: int, directory: Path, proxy_routes: bool) -> tuple[list[int], list[int], list[str],
                                                                          dict[tuple[int, int], int]]:
    """Ports and names of ``count`` nodes: AMQP ports, distribution ports, Erlang short names
    (``msgstorm-<amqp port>``), and the proxy's route ports {(i, j): port} when routes go
    through the proxy (else empty). The cookie of the run is written (``.erlang.cookie``)
    and msgstorm's port-mapper module compiled into ``directory``."""
    if any(char.isspace() for char in str(directory)):
        # rabbitmq-server splits RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS, where -pa names it, at spaces.
        raise ServerError(f"{directory}: a RabbitMQ cluster's run directory may not hold a space (rabbitmq-server "
                          "splits the Erlang arguments naming it); choose another --out")
    directory.mkdir(parents=True, exist_ok=True)
    _compile_epmd_module(directory)
    cookie = directory / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(16), encoding="utf-8")
    cookie.chmod(0o400)
    amqp = [free_port() for _ in range(count)]
    dist = [free_port() for _ in range(count)]
    names = [f"msgstorm-{port}" for port in amqp]
    routes = {(i, j): free_port() for i in range(count) for j in range(count) if i != j} if proxy_routes else {}
    return amqp, dist, names, routes


async def _ctl(ctl: str, env: dict[str, str], *args: str) -> None:
    # ``rabbitmqctl`` ``exec``s its Erlang VM: it dies with msgstorm, as the nodes do.
    process = await asyncio.create_subprocess_exec(ctl, *args, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                   preexec_fn=die_with_parent)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), JOIN_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ServerError(f"rabbitmqctl {' '.join(args)}: no answer within {JOIN_TIMEOUT_S:g} s") from None
    if process.returncode != 0:
        text = out.decode(errors="replace").strip()
        raise ServerError(f"rabbitmqctl {' '.join(args)} failed (code {process.returncode}): {text[-600:]}")


async def join(ctl: str, env: dict[str, str], nodes: list[str]) -> None:
    """Join every node after the first to the first's cluster (``stop_app``, ``join_cluster``,
    ``start_app``), one after another."""
    for node in nodes[1:]:
        await _ctl(ctl, env, "-n", node, "stop_app")
        await _ctl(ctl, env, "-n", node, "join_cluster", nodes[0])
        await _ctl(ctl, env, "-n", node, "start_app")


def mirror_pattern(queue: str) -> str:
    """The policy's pattern: the queue ``queue`` and those named ``<queue>.<anything>`` (the
    audit queue, a fanout consumer's queue)."""
    return f"^{re.escape(queue)}(\\..*)?$"


async def mirror(ctl: str, env: dict[str, str], node: str, queue: str) -> None:
    """Mirror the run's classic queues on every node (``ha-mode: all``, synchronised
    automatically): a policy set before the queues are declared."""
    definition = json.dumps({"ha-mode": "all", "ha-sync-mode": "automatic"})
    await _ctl(ctl, env, "-n", node, "set_policy", "msgstorm-mirrored", mirror_pattern(queue), definition,
               "--apply-to", "queues")
