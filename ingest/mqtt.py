"""Live observations over MQTT, the SensorThings way: clients publish Observation JSON (one, or a list as a batch)
to ``v1.1/Datastreams(<id>)/Observations``; the subscriber writes them to the scene store.

Delivery guarantees:

- QoS 1 on a persistent session (fixed client id, ``clean_session=False``): the broker keeps the subscription
  and queues messages while the subscriber is away or the broker restarts (mosquitto with persistence).
- Each message is written in its own transaction and acknowledged (PUBACK) only after the commit (or after it
  went to the dead-letter table), so an acknowledged message is stored, and an unacknowledged one comes again.
- Writes are idempotent: an observation re-sent (QoS 1 redelivery, a re-published batch) is stored once.
- A malformed message (not JSON, missing result, unknown Datastream, wrong types, a topic that names no
  Datastream, a row the database itself refuses) goes to the dead-letter table with the reason and is
  acknowledged; the subscriber keeps going. Only a store that is away or broken withholds the acknowledgement
  (the subscriber then reconnects, and the broker redelivers), so no message can come back forever.
- The connection is re-established with exponential back-off after the broker goes away.

MQTT wildcards match whole topic levels only: ``v1.1/+/Observations`` (the default) matches every
``v1.1/Datastreams(<id>)/Observations``; a filter such as ``v1.1/Datastreams(+)/Observations`` is invalid.

>>> datastream_from_topic("v1.1/Datastreams(42)/Observations")
42
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from cim.errors import CIMError, DataError, ValidationError, require
from cim.iot import Observation, add_dead_letter, add_observations, observation_from_sta
from ingest.sensorthings import begin, engine_of

__all__ = [
    "DEFAULT_TOPICS",
    "MQTTConnectionError",
    "MQTTSubscriber",
    "SubscriberStats",
    "check_topic_filter",
    "datastream_from_topic",
    "login",
    "observations_from_message",
    "parse_broker",
    "publish_observations",
    "run_subscriber",
    "serve",
]

log = logging.getLogger(__name__)

DEFAULT_TOPICS: tuple[str, ...] = ("v1.1/+/Observations",)
_TOPIC = re.compile(r"(?:^|/)v1\.1/Datastreams\((\d+)\)/Observations$")


class MQTTConnectionError(CIMError, ConnectionError):
    """The MQTT broker cannot be reached, or did not acknowledge in time."""


def _paho():
    return require("paho.mqtt.client", "io")


def login(client: Any, username: str | None = None, password: str | None = None, tls: bool = False) -> Any:
    """Give a paho client the broker account (when one is named) and TLS with the system's CA certificates."""
    if username is not None:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set()
    return client


def check_topic_filter(topic_filter: str) -> str:
    """Refuse filters where a wildcard does not fill a whole level (brokers reject or never match them).

    >>> check_topic_filter("v1.1/Datastreams(+)/Observations")
    Traceback (most recent call last):
    ...
    cim.errors.ValidationError: MQTT topic filter 'v1.1/Datastreams(+)/Observations': '+' must be a whole level: use 'v1.1/+/Observations' and the subscriber reads the Datastream id from each message's topic
    """
    if not isinstance(topic_filter, str) or not topic_filter:
        raise ValidationError(f"MQTT topic filter {topic_filter!r} must be a non-empty string")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "+" in level and level != "+":
            fixed = "/".join("+" if "+" in lv else lv for lv in levels).replace("Datastreams(+)", "+")
            raise ValidationError(f"MQTT topic filter {topic_filter!r}: '+' must be a whole level: use {fixed!r} "
                                  "and the subscriber reads the Datastream id from each message's topic")
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValidationError(f"MQTT topic filter {topic_filter!r}: '#' must be the whole last level, "
                                  "e.g. 'v1.1/#'")
    return topic_filter


def datastream_from_topic(topic: str) -> int:
    """The Datastream id of a ``.../v1.1/Datastreams(<id>)/Observations`` topic, or a DataError."""
    m = _TOPIC.search(topic)
    if m is None:
        raise DataError(f"topic {topic!r} does not name a Datastream: publish observations to "
                        "v1.1/Datastreams(<id>)/Observations")
    return int(m.group(1))


def observations_from_message(topic: str, payload: bytes) -> list[Observation]:
    """The observations of one message: an Observation JSON object, or a JSON list of them (a batch)."""
    ds = datastream_from_topic(topic)
    try:
        doc = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError("payload is not UTF-8 text: send Observation JSON") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"payload is not JSON ({exc.msg} at position {exc.pos}): send Observation JSON, e.g. "
                        '{"phenomenonTime": "2020-06-17T15:00:00Z", "result": 51.3}') from None
    if isinstance(doc, dict):
        return [observation_from_sta(doc, datastream_id=ds)]
    if isinstance(doc, list) and doc:
        return [observation_from_sta(d, datastream_id=ds, where=f"Observation[{i}]") for i, d in enumerate(doc)]
    raise DataError(f"payload is a JSON {type(doc).__name__ if doc != [] else 'empty list'}: send an Observation "
                    "object or a non-empty list of them")


@dataclass
class SubscriberStats:
    """Counts since the subscriber started (messages, observations new and duplicate, dead letters, connects)."""

    messages: int = 0
    observations_new: int = 0
    observations_duplicate: int = 0
    dead_letters: int = 0
    store_failures: int = 0
    connects: int = 0


class MQTTSubscriber:
    """Subscribe to SensorThings observation topics and write every message to a scene (or a SQLAlchemy Engine).

    Use `run` (blocking until ``stop`` is set) or `run_subscriber`. ``ready`` is set each time the broker has
    acknowledged the subscriptions; ``stats`` counts what happened. ``username``/``password`` and ``tls`` are
    for the broker; with ``audit`` each message also gets an entry in the scene's audit table (stored or dead
    letter), in the transaction that writes it.
    """

    def __init__(self, target: Any, host: str = "127.0.0.1", port: int = 1883, *,
                 topics: Sequence[str] = DEFAULT_TOPICS, client_id: str = "cim-twin-ingest", qos: int = 1,
                 keepalive: int = 30, reconnect_delay: tuple[float, float] = (0.2, 10.0),
                 username: str | None = None, password: str | None = None, tls: bool = False,
                 audit: bool = False) -> None:
        mqtt = _paho()
        if qos not in (1, 2):
            raise ValidationError(f"qos={qos!r}: use 1 (or 2) so that the broker keeps messages for this subscriber")
        if isinstance(topics, str):
            topics = (topics,)
        self.topics = tuple(check_topic_filter(t) for t in topics)
        if not client_id:
            raise ValidationError("client_id must be a fixed, non-empty name: the persistent session is keyed by it")
        # each message in its own transaction on its own connection: safe beside other writers of the scene
        self.target, self.host, self.port, self.qos = engine_of(target), host, int(port), qos
        self.client_id = client_id
        self.keepalive, self.reconnect_delay = keepalive, reconnect_delay
        self.source = f"mqtt://{host}:{port}"
        self.stats = SubscriberStats()
        self.ready = threading.Event()
        self._store_failed = False
        self._mqtt = mqtt
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                                  protocol=mqtt.MQTTv311, manual_ack=True, reconnect_on_failure=False)
        login(self.client, username, password, tls)
        self.audit = audit
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # -- callbacks (run in the thread that calls run())
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT %s refused the connection: %s", self.source, reason_code)
            return
        self.stats.connects += 1
        log.info("connected to %s (session present: %s)", self.source, flags.session_present)
        client.subscribe([(t, self.qos) for t in self.topics])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("MQTT %s refused the subscription to %s: %s", self.source, self.topics, failed)
            return
        self.ready.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.ready.clear()
        log.info("disconnected from %s: %s", self.source, reason_code)

    def _on_message(self, client, userdata, msg) -> None:
        self.stats.messages += 1
        try:
            self._store(msg)
        except Exception:  # the store failed: no ack, the broker sends the message again after a reconnect
            self.stats.store_failures += 1
            self._store_failed = True
            log.exception("could not store a message from %s on %s; it will be redelivered", self.source, msg.topic)
            return
        client.ack(msg.mid, msg.qos)

    def _store(self, msg) -> None:
        """Parse, then write in one transaction. What can never be stored goes to the dead letters (and is then
        acknowledged); a store that is away or broken raises, so that the message is not acknowledged."""
        payload = bytes(msg.payload)
        try:
            obs = observations_from_message(msg.topic, payload)
        except DataError as exc:
            return self._dead_letter(msg, payload, str(exc))
        except Exception as exc:  # a payload our parser did not foresee: still only this message's problem
            log.exception("unexpected error parsing a message on %s", msg.topic)
            return self._dead_letter(msg, payload, f"could not be read ({type(exc).__name__}: {exc})")
        try:
            with begin(self.target) as conn:
                new = add_observations(conn, obs)
                self._record(conn, msg.topic, "stored", f"{new} new, {len(obs) - new} already stored")
        except DataError as exc:
            return self._dead_letter(msg, payload, str(exc))
        except (sa.exc.DataError, sa.exc.IntegrityError) as exc:  # the database refuses this row, every time
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            return self._dead_letter(msg, payload, f"the store refused it: {reason}")
        self.stats.observations_new += new
        self.stats.observations_duplicate += len(obs) - new

    def _record(self, conn: sa.Connection, topic: str, outcome: str, detail: str) -> None:
        """With ``audit``, one audit entry per message, in its transaction (who: the broker and this client)."""
        if self.audit:
            from cim.security import record

            record(conn, who=f"mqtt:{self.client_id}", action="MQTT publish", target=topic, outcome=outcome,
                   detail=detail[:500])

    def _dead_letter(self, msg, payload: bytes, reason: str) -> None:
        with begin(self.target) as conn:
            add_dead_letter(conn, source=self.source, topic=msg.topic, reason=reason, payload=payload)
            self._record(conn, msg.topic, "dead letter", reason)
        self.stats.dead_letters += 1
        log.warning("dead letter from %s on %s: %s", self.source, msg.topic, reason)

    # -- the loop
    def run(self, stop: threading.Event | None = None) -> SubscriberStats:
        """Connect, subscribe and store messages until ``stop`` is set, reconnecting whenever the connection drops."""
        stop = stop or threading.Event()
        ok = self._mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        lo, hi = self.reconnect_delay
        delay, connected = lo, False
        self.client.connect_async(self.host, self.port, self.keepalive)
        try:
            while not stop.is_set():
                if not connected:
                    try:
                        self.client.reconnect()
                        connected = True
                    except OSError as exc:
                        log.info("cannot reach %s (%s); retrying in %.1f s", self.source, exc, delay)
                        stop.wait(delay)
                        delay = min(delay * 2, hi)
                        continue
                rc = self.client.loop(timeout=0.1)
                if rc != ok or self._store_failed:
                    if self._store_failed:
                        self._store_failed = False
                        self.client.disconnect()
                        self.client.loop(timeout=0.1)
                    connected = False
                    stop.wait(delay)
                    delay = min(delay * 2, hi)
                elif self.client.is_connected():
                    delay = lo
        finally:
            if connected:
                self.client.disconnect()
                deadline = time.monotonic() + 1.0
                while self.client.loop(timeout=0.05) == ok and time.monotonic() < deadline:
                    pass
        return self.stats


def run_subscriber(scene: Any, host: str = "127.0.0.1", port: int = 1883, *,
                   topics: Sequence[str] = DEFAULT_TOPICS, client_id: str = "cim-twin-ingest", qos: int = 1,
                   stop: threading.Event | None = None, ready: threading.Event | None = None,
                   **options: Any) -> SubscriberStats:
    """Store SensorThings observations published over MQTT into ``scene`` until ``stop`` is set (forever if None).

    ``scene`` is a cim Scene (or a SQLAlchemy Engine on store tables). ``ready``, if given, is set once the broker
    has acknowledged the subscriptions. Keep ``client_id`` fixed between runs: the broker queues QoS 1 messages
    for it while it is away. Other options go to `MQTTSubscriber`.
    """
    sub = MQTTSubscriber(scene, host, port, topics=topics, client_id=client_id, qos=qos, **options)
    if ready is not None:
        sub.ready = ready
    return sub.run(stop)


def parse_broker(address: str, default_port: int = 1883) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``, or ``[IPv6]:PORT``) -> (host, port), as `cim ingest SCENE --mqtt` takes it.

    >>> parse_broker("127.0.0.1:1884"), parse_broker("broker.local")
    (('127.0.0.1', 1884), ('broker.local', 1883))
    """
    m = re.fullmatch(r"\[(?P<v6>[0-9A-Fa-f:.]+)\](?::(?P<p6>\d+))?|(?P<host>[^:\s]+)(?::(?P<port>\d+))?",
                     address.strip() if isinstance(address, str) else "")
    if m is None:
        raise ValidationError(f"MQTT broker {address!r} is not HOST:PORT: write e.g. 127.0.0.1:1883")
    host = m.group("v6") or m.group("host")
    port = int(m.group("p6") or m.group("port") or default_port)
    if not 0 < port < 65536:
        raise ValidationError(f"MQTT broker port {port} is out of range: use 1..65535 (MQTT's is 1883)")
    return host, port


def serve(scene: Any, address: str, **options: Any) -> SubscriberStats:
    """Run the subscriber in the foreground until SIGINT or SIGTERM, then disconnect cleanly and return the
    counts (what `cim ingest SCENE --mqtt HOST:PORT` does)."""
    import signal

    host, port = parse_broker(address)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run_subscriber(scene, host, port, stop=stop, **options)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def publish_observations(host: str, port: int, datastream_id: int, observations: Iterable[Observation | dict], *,
                         batch: bool = False, qos: int = 1, timeout: float = 10.0,
                         client_id: str | None = None, username: str | None = None,
                         password: str | None = None) -> int:
    """Publish observations to ``v1.1/Datastreams(<id>)/Observations`` and wait until the broker acknowledged
    each (QoS 1); return how many messages were sent. ``batch=True`` sends them all as one JSON list;
    ``username``/``password`` log in to a broker that requires an account.

    Raises `MQTTConnectionError` when the broker is unreachable or does not acknowledge within ``timeout``.
    """
    mqtt = _paho()
    docs = [o.to_sta() if isinstance(o, Observation) else dict(o) for o in observations]
    topic = f"v1.1/Datastreams({int(datastream_id)})/Observations"
    payloads = [json.dumps(docs)] if batch else [json.dumps(d) for d in docs]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"cim-pub-{uuid.uuid4().hex[:12]}",
                         protocol=mqtt.MQTTv311)
    login(client, username, password)
    answered, refused = threading.Event(), []

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(host, int(port), keepalive=30)
    except OSError as exc:
        raise MQTTConnectionError(f"cannot reach the MQTT broker at {host}:{port} ({exc}): is it running?") from None
    client.loop_start()
    try:
        answered.wait(timeout)
        if refused:
            raise MQTTConnectionError(f"the MQTT broker at {host}:{port} refused the connection ({refused[0]}): "
                                      "check username and password")
        infos = [client.publish(topic, p, qos=qos) for p in payloads]
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(deadline - time.monotonic(), 0.01))
            if not info.is_published():
                raise MQTTConnectionError(f"the MQTT broker at {host}:{port} did not acknowledge within "
                                          f"{timeout} s: check it, then publish again (re-sending is safe)")
    except (RuntimeError, ValueError) as exc:   # paho raises these when the connection is lost mid-way
        raise MQTTConnectionError(f"publishing to {host}:{port} failed ({exc}): publish again "
                                  "(re-sending is safe)") from None
    finally:
        client.disconnect()
        client.loop_stop()
    return len(payloads)
