"""Apache Kafka brokers msgstorm starts itself: KRaft mode, from a pinned release's jars.

Place in the pipeline: under ``drivers/kafka.py``, which starts the brokers a run needs.
The jars (broker, tools and their dependencies) come from Maven Central through
``scripts/fetch-kafka.sh`` into ``.cache/kafka/<version>/libs`` of the checkout (git-ignored);
``MSGSTORM_KAFKA_LIBS`` names another directory of them. Each broker is one JVM
(``kafka.Kafka``) that is both broker and controller (``process.roles=broker,controller``),
on two free loopback ports (clients, and the controllers' quorum), with its storage formatted
first (``kafka.tools.StorageTool format``, every broker's at once) under ``RUN_DIR/servers/<name>-data`` and its log
at ``RUN_DIR/servers/<name>.out``. The heap is small (``-Xmx512m``): loopback runs of a few
million messages, on a machine the generator shares.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from msgstorm.live.servers import ManagedServer, ServerError, free_port
from msgstorm.processes import die_with_parent

__all__ = ["FETCH", "KAFKA_LIBS_ENV", "KAFKA_VERSION", "broker_properties", "cluster_id", "find_kafka_libs",
           "java_command", "kafka_brokers"]

KAFKA_VERSION = "4.1.1"
KAFKA_LIBS_ENV = "MSGSTORM_KAFKA_LIBS"
FETCH = "scripts/fetch-kafka.sh (Maven fetches the pinned Apache Kafka jars into .cache/kafka/)"
_PROJECT = Path(__file__).resolve().parents[4]  # src/msgstorm/live/drivers/kafka_broker.py -> the checkout
_LIBS = Path(".cache") / "kafka" / KAFKA_VERSION / "libs"
HEAP = "-Xmx512m"
# The storage tool's (``kafka_brokers``): it formats one log directory and exits.
FORMAT_HEAP = "-Xmx256m"
# Log levels of the broker's log (log4j 1 through reload4j): warnings, and its start and stop.
_LOG4J = """log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
"""


def find_kafka_libs() -> Path:
    """The directory of the Kafka jars, else a ServerError naming how to fetch them."""
    own = os.environ.get(KAFKA_LIBS_ENV)
    if own:
        if not any(Path(own).glob("kafka_2.13-*.jar")):
            raise ServerError(f"${KAFKA_LIBS_ENV}={own}: no kafka_2.13 jar there; fetch them with {FETCH}")
        return Path(own).resolve()
    for root in (_PROJECT, Path.cwd()):
        if (root / _LIBS / ".complete").is_file():
            return (root / _LIBS).resolve()
    raise ServerError(f"Apache Kafka {KAFKA_VERSION} jars not found (${KAFKA_LIBS_ENV}, ./{_LIBS}); fetch them with "
                      f"{FETCH}")


def java_command(libs: Path, main: str, *args: str, heap: str = HEAP, tool: bool = False,
                 options: tuple[str, ...] = ()) -> list[str]:
    """The JVM running ``main`` from the jars in ``libs``, with JVM ``options`` of the
    caller's. A ``tool`` runs for seconds and exits: its JIT stops at the quick first tier and
    its collector is the serial one, so it starts on less CPU (a broker keeps the full JIT and
    G1 for its steady state)."""
    runtime = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"] if tool else ["-XX:+UseG1GC"]
    return ["java", heap, *runtime, *options, "-cp", f"{libs}/*", main, *args]


def cluster_id() -> str:
    """A new KRaft cluster id (a random UUID, URL-safe base64 without padding, as
    ``kafka-storage random-uuid`` makes); it names the cluster only, nothing in the history.
    Never one that starts with "-": the storage tool would read it as an option (Kafka's own
    ``Uuid.randomUuid`` draws again for the same reason)."""
    while True:
        drawn = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not drawn.startswith("-"):
            return drawn


def broker_properties(node_id: int, port: int, voters: dict[int, int], data: Path, brokers: int) -> str:
    """``server.properties`` of broker ``node_id`` (clients on ``port``), one of ``voters``
    ({node id: controller port}): broker and controller at once, internal topics replicated
    on every broker, no automatic topic creation, consumer groups formed at once."""
    quorum = ",".join(f"{node}@127.0.0.1:{controller}" for node, controller in sorted(voters.items()))
    replicas = str(brokers)
    return "\n".join([
        "process.roles=broker,controller", f"node.id={node_id}", f"controller.quorum.voters={quorum}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{voters[node_id]}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}", "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT", "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={data}", f"offsets.topic.replication.factor={replicas}",
        f"transaction.state.log.replication.factor={replicas}", "transaction.state.log.min.isr=1",
        f"share.coordinator.state.topic.replication.factor={replicas}", "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0", "auto.create.topics.enable=false", "num.partitions=1",
        # A broker killed is fenced, and its partitions get new leaders, 3 s after its last
        # heartbeat (Kafka's default, 9 s, would stall acks = "all" produces that long).
        "broker.heartbeat.interval.ms=500", "broker.session.timeout.ms=3000",
        # A broker back takes its partitions' leadership again soon after it rejoins.
        "leader.imbalance.check.interval.seconds=5", ""])


def kafka_brokers(count: int, directory: Path, start_timeout_s: float) -> list[ManagedServer]:
    """``count`` brokers' ``ManagedServer``s (not started), their storage formatted: broker
    ``kafka-<i>`` is node ``i + 1``; its client port is the server's ``port``."""
    libs = find_kafka_libs()
    if shutil.which("java") is None:
        raise ServerError("java not found: Apache Kafka needs Java 17 or later (e.g. apt-get install "
                          "openjdk-17-jre-headless)")
    directory.mkdir(parents=True, exist_ok=True)
    log4j = directory / "kafka-log4j.properties"
    log4j.write_text(_LOG4J, encoding="utf-8")
    ports = [free_port() for _ in range(count)]
    voters = {k + 1: free_port() for k in range(count)}
    cluster = cluster_id()
    configs = []
    for k in range(count):
        config = directory / f"kafka-{k}.properties"
        config.write_text(broker_properties(k + 1, ports[k], voters, directory / f"kafka-{k}-data", count),
                          encoding="utf-8")
        configs.append(config)
    # Every broker's storage formatted at once: each format is a JVM of its own that takes
    # seconds to start, and one after another they would add up before any broker starts.
    formatting = [subprocess.Popen(java_command(libs, "kafka.tools.StorageTool", "format", "-t", cluster, "-c",
                                                str(config), "--ignore-formatted", heap=FORMAT_HEAP, tool=True),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=die_with_parent)  # a JVM for seconds: not past msgstorm
                  for config in configs]
    failed = []
    try:
        for k, process in enumerate(formatting):
            try:
                out, err = process.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                failed.append(f"formatting kafka-{k}'s storage did not finish in 120 s")
                continue
            if process.returncode != 0:
                failed.append(f"formatting kafka-{k}'s storage failed (code {process.returncode}): "
                              f"{(err or out).strip()[-500:]}")
    finally:
        for process in formatting:
            if process.poll() is None:
                process.kill()
                process.wait()
    if failed:
        raise ServerError("; ".join(failed))
    servers = []
    for k, config in enumerate(configs):
        argv = java_command(libs, "kafka.Kafka", str(config), options=("-Xms128m", f"-Dlog4j.configuration=file:{log4j}"))
        servers.append(ManagedServer(f"kafka-{k}", argv, ports[k], directory, max(start_timeout_s, 60.0), cpus=None))
    return servers
