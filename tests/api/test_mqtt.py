"""The SensorThings MQTT extension through a real mosquitto: observations created over HTTP are published, and
observations published by clients are stored (once)."""

from __future__ import annotations

import json
import queue
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from cim import iot
from ingest.mqtt import MQTTConnectionError, publish_observations
from tests.api.conftest import RAIN

pytestmark = pytest.mark.mqtt


def _subscriber(port: int, topic: str) -> tuple[mqtt.Client, queue.Queue]:
    got: queue.Queue = queue.Queue()
    subscribed = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    c.on_message = lambda cl, ud, msg: got.put((msg.topic, json.loads(msg.payload)))
    c.on_subscribe = lambda *a: subscribed.put(True)
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.subscribe(topic, qos=1)
    subscribed.get(timeout=10)
    return c, got


def _results(twin, ds: int) -> list[float]:
    with twin.scene.store.engine.connect() as conn:
        return iot.observations(conn, ds)["result"].tolist()


def test_http_observations_are_published(twin, mqtt_broker):
    c = twin.client(mqtt_host="127.0.0.1", mqtt_port=mqtt_broker.port, mqtt_client_id=f"api-{uuid.uuid4().hex}")
    topic = f"v1.1/Datastreams({twin.rain_id})/Observations"
    sub, got = _subscriber(mqtt_broker.port, topic)
    try:
        r = c.post(f"/v1.1/Datastreams({twin.rain_id})/Observations", headers=twin.h("ingest"),
                   json={"phenomenonTime": "2020-06-17T15:00:00Z", "result": 8.25})
        assert r.status_code == 201
        t, msg = got.get(timeout=10)
        assert t == topic
        assert msg["result"] == 8.25 and msg["phenomenonTime"] == "2020-06-17T15:00:00Z"
        assert msg["@iot.id"] == r.json()["@iot.id"]
        # a re-sent observation is not new: nothing more is published
        assert c.post(f"/v1.1/Datastreams({twin.rain_id})/Observations", headers=twin.h("ingest"),
                      json={"phenomenonTime": "2020-06-17T15:00:00Z", "result": 8.25}).status_code == 200
        with pytest.raises(queue.Empty):
            got.get(timeout=1.0)
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert _results(twin, twin.rain_id) == [*RAIN, 8.25]


def test_published_observations_are_stored_once(twin, mqtt_broker):
    c = twin.client(mqtt_host="127.0.0.1", mqtt_port=mqtt_broker.port, mqtt_client_id=f"api-{uuid.uuid4().hex}")
    assert c.app.state.mqtt.ready.wait(10)
    obs = [{"phenomenonTime": "2020-06-17T15:00:00Z", "result": 9.0},
           {"phenomenonTime": "2020-06-17T16:00:00Z", "result": 9.5}]
    publish_observations("127.0.0.1", mqtt_broker.port, twin.rain_id, obs, batch=True)
    publish_observations("127.0.0.1", mqtt_broker.port, twin.rain_id, obs[:1])          # a re-send
    url = f"/v1.1/Datastreams({twin.rain_id})/Observations"
    stats = c.app.state.mqtt.subscriber.stats
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:     # wait for both messages to be stored, not only received
        values = [o["result"] for o in c.get(url, headers=twin.h("read")).json()["value"]]
        if len(values) >= 7 and stats.observations_new + stats.observations_duplicate >= 3:
            break
        time.sleep(0.2)
    assert values == [*RAIN, 9.0, 9.5]
    assert stats.observations_new == 2 and stats.observations_duplicate == 1
    # every message is in the audit table with what became of it, a malformed one too
    raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    raw.connect("127.0.0.1", mqtt_broker.port)
    raw.loop_start()
    raw.publish(f"v1.1/Datastreams({twin.rain_id})/Observations", b"{not json", qos=1).wait_for_publish(10)
    raw.disconnect()
    raw.loop_stop()
    deadline = time.monotonic() + 15
    while stats.dead_letters < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    entries = [(e.who, e.target, e.outcome, e.detail) for e in twin.audit() if e.action == "MQTT publish"]
    who = f"mqtt:{c.app.state.settings.mqtt_client_id}"
    topic = f"v1.1/Datastreams({twin.rain_id})/Observations"
    assert sorted(entries[:2], key=lambda e: e[3]) == [(who, topic, "stored", "0 new, 1 already stored"),
                                                       (who, topic, "stored", "2 new, 0 already stored")]
    assert entries[2][:3] == (who, topic, "dead letter") and "JSON" in entries[2][3]


def test_a_broker_with_accounts_is_reached_with_the_service_account(twin):
    from tests.services import MosquittoBroker

    broker = MosquittoBroker(users={"cim-api": "s3cret", "gauge-1": "g4uge"}).start()
    try:
        c = twin.client(mqtt_host="127.0.0.1", mqtt_port=broker.port, mqtt_client_id=f"api-{uuid.uuid4().hex}",
                        mqtt_username="cim-api", mqtt_password="s3cret")
        assert c.app.state.mqtt.ready.wait(10)
        publish_observations("127.0.0.1", broker.port, twin.rain_id,
                             [{"phenomenonTime": "2020-06-17T15:00:00Z", "result": 7.0}], username="gauge-1",
                             password="g4uge")
        stats = c.app.state.mqtt.subscriber.stats
        deadline = time.monotonic() + 15
        while stats.observations_new < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _results(twin, twin.rain_id) == [*RAIN, 7.0]
        # an anonymous publisher is turned away by the broker: nothing more is stored
        with pytest.raises(MQTTConnectionError, match=r"refused the connection .*check username and password"):
            publish_observations("127.0.0.1", broker.port, twin.rain_id,
                                 [{"phenomenonTime": "2020-06-17T16:00:00Z", "result": 99.0}], timeout=2.0)
        time.sleep(1.0)
        assert _results(twin, twin.rain_id) == [*RAIN, 7.0]
    finally:
        broker.cleanup()
