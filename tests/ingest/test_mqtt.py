"""Live MQTT ingest against the real mosquitto broker of the harness: storing, duplicates, dead letters, restarts."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pandas as pd
import pytest
import sqlalchemy as sa

import cim
from cim import iot
from ingest.mqtt import (
    MQTTConnectionError,
    MQTTSubscriber,
    check_topic_filter,
    datastream_from_topic,
    observations_from_message,
    publish_observations,
    run_subscriber,
)
from tests.ingest.test_iot import gauge_thing

pytestmark = pytest.mark.mqtt
TOPIC = "v1.1/Datastreams({})/Observations"


def wait_until(predicate, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def count(engine, table=iot.observations_table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


@contextlib.contextmanager
def running(target, broker, client_id: str):
    """A subscriber in a thread, subscribed before this yields; stopped and joined (bounded) afterwards."""
    sub = MQTTSubscriber(target, "127.0.0.1", broker.port, client_id=client_id, reconnect_delay=(0.1, 1.0))
    stop = threading.Event()
    thread = threading.Thread(target=sub.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert sub.ready.wait(10), "the subscriber did not subscribe within 10 s"
        yield sub
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "the subscriber did not stop within 10 s"


@pytest.fixture
def gauge(store_url):
    """A scene (both backends) with the Vlissingen gauge (no observations yet), its Datastream id and the
    24 observations of the sample file."""
    scene = cim.Scene.create(store_url, crs="EPSG:28992", name="Vlissingen")
    thing = gauge_thing()
    observations = thing.datastreams[0].observations
    empty = iot.Thing(thing.name, thing.description, thing.properties, thing.locations,
                      (iot.Datastream(**{**vars(thing.datastreams[0]), "observations": ()}),))
    with scene.transaction() as conn:
        ds_id = iot.add_thing(conn, empty).datastream_ids["Hourly precipitation 310"]
    yield scene, ds_id, observations
    scene.store.close()


# ------------------------------------------------------------------------------------------------ no broker

def test_wildcards_must_fill_whole_levels():
    assert check_topic_filter("v1.1/+/Observations") == "v1.1/+/Observations"
    with pytest.raises(cim.ValidationError, match=r"'\+' must be a whole level: use 'v1.1/\+/Observations'"):
        check_topic_filter("v1.1/Datastreams(+)/Observations")
    with pytest.raises(cim.ValidationError, match="'#' must be the whole last level"):
        check_topic_filter("v1.1/#/Observations")
    assert datastream_from_topic("city/v1.1/Datastreams(310)/Observations") == 310


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    (TOPIC.format(1), b'{"phenomenonTime": "2020-06-17T15:00:00Z", "result": 51.3', "payload is not JSON"),
    (TOPIC.format(1), b"\xff\xfe", "payload is not UTF-8"),
    (TOPIC.format(1), b'{"phenomenonTime": "2020-06-17T15:00:00Z"}', "result is missing"),
    (TOPIC.format(1), b'{"phenomenonTime": 1592406000, "result": 51.3}', "phenomenonTime must be an ISO 8601"),
    (TOPIC.format(1), b'{"phenomenonTime": "2020-06-17T15:00:00Z", "result": 1, "Datastream": {"@iot.id": 2}}',
     "contradicts Datastream 1"),
    (TOPIC.format(1), b"[]", "empty list"),
    (TOPIC.format(1), b"42", "payload is a JSON int"),
    ("v1.1/Things(1)/Observations", b'{"phenomenonTime": "2020-06-17T15:00:00Z", "result": 1}',
     "does not name a Datastream"),
])
def test_malformed_messages_are_refused_with_a_reason(topic, payload, reason):
    with pytest.raises(cim.DataError, match=reason):
        observations_from_message(topic, payload)


def test_a_batch_message_gives_all_its_observations():
    obs = observations_from_message(TOPIC.format(5), json.dumps([
        {"phenomenonTime": "2020-06-17T14:00:00Z", "result": 3.0},
        {"phenomenonTime": "2020-06-17T15:00:00Z", "result": 51.3, "@iot.id": "knmi310-2020061715"}]).encode())
    assert [(o.datastream_id, o.result, o.id) for o in obs] == [(5, 3.0, None), (5, 51.3, "knmi310-2020061715")]


def test_publishing_to_no_broker_is_a_clear_error():
    from tests.services import free_port

    with pytest.raises(MQTTConnectionError, match=r"cannot reach the MQTT broker .* is it running"):
        publish_observations("127.0.0.1", free_port(), 1, [{"phenomenonTime": "2020-06-17T15:00Z", "result": 1}])


# --------------------------------------------------------------------------------------------- live broker

def test_live_observations_are_stored_once_even_when_resent(gauge, mqtt_broker):
    scene, ds_id, observations = gauge
    engine = scene.store.engine
    with running(scene, mqtt_broker, f"cim-test-{uuid.uuid4().hex[:8]}") as sub:
        assert publish_observations("127.0.0.1", mqtt_broker.port, ds_id, observations) == 24
        wait_until(lambda: count(engine) == 24, "24 stored observations")
        # the whole day re-sent as one batch, and the peak once more on its own
        publish_observations("127.0.0.1", mqtt_broker.port, ds_id, observations, batch=True)
        publish_observations("127.0.0.1", mqtt_broker.port, ds_id, [observations[15]])
        wait_until(lambda: sub.stats.messages == 26, "26 messages")
        wait_until(lambda: sub.stats.observations_duplicate == 25, "25 duplicates counted")
    assert count(engine) == 24
    assert sub.stats.observations_new == 24 and sub.stats.dead_letters == 0
    with engine.connect() as conn:
        series = iot.observation_series(conn, ds_id)
    assert series.max() == 51.3 and series.idxmax().isoformat() == "2020-06-17T15:00:00+00:00"


def test_malformed_messages_go_to_dead_letters_and_the_subscriber_keeps_going(gauge, mqtt_broker):
    scene, ds_id, observations = gauge
    engine = scene.store.engine
    bad = [
        (TOPIC.format(ds_id), b'{"phenomenonTime": "2020-06-17T15:00:00Z", "result": ', "payload is not JSON"),
        (TOPIC.format(ds_id), b'{"phenomenonTime": "2020-06-17T15:00:00Z"}', "result is missing"),
        (TOPIC.format(9999), b'{"phenomenonTime": "2020-06-17T15:00:00Z", "result": 1.0}',
         "Datastream 9999 is not in the store"),
        (TOPIC.format(ds_id), b'{"phenomenonTime": "2020-06-17T15:00:00Z", "result": "heavy"}',
         "does not fit the Datastream's observationType OM_Measurement"),
        (TOPIC.format(ds_id), b'{"phenomenonTime": 1592406000, "result": 51.3}', "must be an ISO 8601 time"),
        (TOPIC.format(2**40), b'{"phenomenonTime": "2020-06-17T15:00:00Z", "result": 1.0}', "is out of range"),
        (TOPIC.format(ds_id), json.dumps({"phenomenonTime": "2020-06-17T15:00:00Z", "result": 1.0,
                                          "@iot.id": "x" * 300}).encode(), "300 characters long"),
        (TOPIC.format(ds_id), b'{"phenomenonTime": "0001-01-01T00:00:00+01:00", "result": 1.0}',
         "out of range in UTC"),
        # a batch with one bad member is refused whole: nothing of it is stored
        (TOPIC.format(ds_id), b'[{"phenomenonTime": "2020-06-17T01:00:00Z", "result": 0.0}, {"result": 2}]',
         "Observation[1].phenomenonTime is missing"),
    ]
    with running(scene, mqtt_broker, f"cim-test-{uuid.uuid4().hex[:8]}") as sub:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"cim-bad-{uuid.uuid4().hex[:8]}")
        client.connect("127.0.0.1", mqtt_broker.port)
        client.loop_start()
        try:
            for topic, payload, _ in bad:
                client.publish(topic, payload, qos=1).wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()
        publish_observations("127.0.0.1", mqtt_broker.port, ds_id, [observations[15]])
        wait_until(lambda: count(engine) == 1, "the good observation after the bad ones")
        wait_until(lambda: count(engine, iot.dead_letter_table) == len(bad), f"{len(bad)} dead letters")
    with engine.connect() as conn:
        letters = iot.dead_letters(conn)
        stored = iot.observations(conn, ds_id)
    assert stored["result"].tolist() == [51.3]
    for (topic, payload, reason), (_, row) in zip(bad, letters.iterrows(), strict=True):
        assert reason in row["reason"]
        assert (row["topic"], row["payload"]) == (topic, payload)
        assert row["source"] == f"mqtt://127.0.0.1:{mqtt_broker.port}"
    assert sub.stats.dead_letters == len(bad) and sub.stats.observations_new == 1


def test_qos1_redelivery_of_an_unacknowledged_message_is_stored_once(gauge, mqtt_broker):
    scene, ds_id, observations = gauge
    engine = scene.store.engine
    client_id = f"cim-test-{uuid.uuid4().hex[:8]}"
    with running(scene, mqtt_broker, client_id):
        pass                                       # the broker now holds a persistent session with the subscription
    publish_observations("127.0.0.1", mqtt_broker.port, ds_id, [observations[15]])   # queued for the session

    # a consumer that stores the message and dies before acknowledging it (the at-least-once window)
    got: list[paho.MQTTMessage] = []
    crashed = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                          manual_ack=True)
    crashed.on_message = lambda c, u, msg: got.append(msg)
    crashed.connect("127.0.0.1", mqtt_broker.port)
    crashed.loop_start()
    try:
        wait_until(lambda: got, "the queued message")
        with engine.begin() as conn:
            iot.add_observations(conn, observations_from_message(got[0].topic, got[0].payload))
    finally:
        crashed.disconnect()
        crashed.loop_stop()
    assert count(engine) == 1

    with running(scene, mqtt_broker, client_id) as sub:    # the broker redelivers the unacknowledged message
        wait_until(lambda: sub.stats.messages >= 1, "the redelivered message")
    assert sub.stats.observations_duplicate == 1 and sub.stats.observations_new == 0
    assert count(engine) == 1

    with running(scene, mqtt_broker, client_id) as sub:    # now acknowledged: it does not come a third time
        time.sleep(0.5)
    assert sub.stats.messages == 0


def test_broker_restart_reconnects_and_loses_nothing(gauge, mqtt_broker):
    scene, ds_id, obs = gauge
    engine = scene.store.engine
    client_id = f"cim-test-{uuid.uuid4().hex[:8]}"
    port = mqtt_broker.port
    with running(scene, mqtt_broker, client_id) as sub:
        publish_observations("127.0.0.1", port, ds_id, obs[0:2])
        wait_until(lambda: count(engine) == 2, "2 observations before the restart")
        mqtt_broker.restart()
        wait_until(lambda: sub.ready.is_set() and sub.stats.connects >= 2, "the subscriber to reconnect")
        publish_observations("127.0.0.1", port, ds_id, obs[2:4])
        wait_until(lambda: count(engine) == 4, "2 observations after the restart")

    # the subscriber is away: QoS 1 messages wait in its persistent session, across another broker restart
    publish_observations("127.0.0.1", port, ds_id, obs[4:20])
    mqtt_broker.restart()
    stop, ready = threading.Event(), threading.Event()
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(stats=run_subscriber(
        scene, "127.0.0.1", port, client_id=client_id, stop=stop, ready=ready)), daemon=True)
    thread.start()
    try:
        assert ready.wait(10)
        publish_observations("127.0.0.1", port, ds_id, obs[20:24])
        wait_until(lambda: count(engine) == 24, "all 24 observations")
    finally:
        stop.set()
        thread.join(10)
    assert result["stats"].observations_new == 20 and result["stats"].dead_letters == 0
    with engine.connect() as conn:
        series = iot.observation_series(conn, ds_id)
    assert len(series) == 24 and series.max() == 51.3 and series.sum() == pytest.approx(76.8)


def test_a_store_failure_is_not_acknowledged_and_the_message_comes_again(gauge, mqtt_broker):
    scene, ds_id, obs = gauge
    engine = scene.store.engine
    with engine.begin() as conn:        # the store breaks: observations cannot be written
        conn.execute(sa.text("ALTER TABLE iot_observations RENAME TO iot_observations_away"))
    try:
        with running(scene, mqtt_broker, f"cim-test-{uuid.uuid4().hex[:8]}") as sub:
            publish_observations("127.0.0.1", mqtt_broker.port, ds_id, [obs[15]])
            wait_until(lambda: sub.stats.store_failures >= 2, "the message to fail, come again and fail again")
            with engine.begin() as conn:      # the store is back
                conn.execute(sa.text("ALTER TABLE iot_observations_away RENAME TO iot_observations"))
            wait_until(lambda: sub.stats.observations_new == 1, "the message stored after the store came back")
    finally:
        with engine.begin() as conn:
            if sa.inspect(conn).has_table("iot_observations_away"):
                conn.execute(sa.text("ALTER TABLE iot_observations_away RENAME TO iot_observations"))
    assert sub.stats.dead_letters == 0 and sub.stats.connects >= 2
    with engine.connect() as conn:
        assert iot.observations(conn, ds_id)["result"].tolist() == [51.3]


def test_broker_addresses_are_parsed_or_refused():
    from ingest.mqtt import parse_broker

    assert parse_broker("127.0.0.1:1884") == ("127.0.0.1", 1884)
    assert parse_broker("[::1]:8883") == ("::1", 8883)
    assert parse_broker("broker.city.nl") == ("broker.city.nl", 1883)
    with pytest.raises(cim.ValidationError, match="is not HOST:PORT"):
        parse_broker("mqtt://broker:1883")
    with pytest.raises(cim.ValidationError, match="port 70000 is out of range"):
        parse_broker("broker:70000")


def test_serve_runs_until_sigterm_in_its_own_process(gauge, mqtt_broker, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    scene, ds_id, obs = gauge
    engine = scene.store.engine
    script = tmp_path / "serve.py"
    script.write_text(
        "import sys, cim\nfrom ingest.mqtt import serve\n"
        f"stats = serve(cim.open_scene({scene.store.url!r}), '127.0.0.1:{mqtt_broker.port}', client_id=sys.argv[1])\n"
        "print('stored', stats.observations_new, flush=True)\n")
    client_id = f"cim-serve-{uuid.uuid4().hex[:8]}"
    root = Path(__file__).parents[2]
    proc = subprocess.Popen([sys.executable, str(script), client_id], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        def published():   # publish until the subscriber (which starts in its own time) has stored it
            publish_observations("127.0.0.1", mqtt_broker.port, ds_id, [obs[15]])
            return count(engine) == 1
        wait_until(published, "the serving process to store an observation", timeout=30)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, err
    assert out.strip() == "stored 1"


def test_a_killed_subscriber_resumes_its_session_and_stores_each_message_exactly_once(gauge, mqtt_broker,
                                                                                      tmp_path):
    import os
    import signal
    import subprocess
    import sys

    scene, ds_id, _ = gauge
    engine = scene.store.engine
    root = Path(__file__).parents[2]
    script = tmp_path / "serve.py"
    script.write_text(
        "import sys, cim\nfrom ingest.mqtt import serve\n"
        f"serve(cim.open_scene({scene.store.url!r}), '127.0.0.1:{mqtt_broker.port}', client_id=sys.argv[1])\n")
    client_id = f"cim-kill-{uuid.uuid4().hex[:8]}"

    def start():
        proc = subprocess.Popen([sys.executable, str(script), client_id], cwd=root, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)})
        procs.append(proc)
        return proc

    procs: list[subprocess.Popen] = []
    try:
        first = start()

        def subscribed():   # publish a marker until the serving process has its session and stored it
            publish_observations("127.0.0.1", mqtt_broker.port, ds_id,
                                 [{"phenomenonTime": "2000-01-01T00:00:00Z", "result": 0.0}])
            return count(engine) == 1

        wait_until(subscribed, "the serving process to subscribe", timeout=30)
        times = pd.date_range("2024-01-01T00:00Z", periods=1000, freq="min")
        publish_observations("127.0.0.1", mqtt_broker.port, ds_id,
                             [{"phenomenonTime": t.isoformat(), "result": i / 10} for i, t in enumerate(times)])
        wait_until(lambda: count(engine) >= 101, "the first hundred observations")
        first.send_signal(signal.SIGKILL)                                    # no goodbye, no last acks
        first.wait(10)
        stored_at_kill = count(engine)
        assert stored_at_kill < 1001, "the subscriber finished before it could be killed"
        second = start()                                                     # the same client id resumes
        wait_until(lambda: count(engine) == 1001, "all 1000 observations after the restart", timeout=60)
        second.send_signal(signal.SIGTERM)
        second.wait(15)
        assert second.returncode == 0, second.stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
    with engine.connect() as conn:
        s = iot.observation_series(conn, ds_id, "2024-01-01T00:00Z")
    assert len(s) == 1000 and s.sum() == pytest.approx(sum(i / 10 for i in range(1000)))


def test_a_row_the_database_refuses_goes_to_dead_letters_instead_of_coming_back_forever(gauge, mqtt_broker):
    scene, ds_id, obs = gauge
    engine = scene.store.engine
    with engine.begin() as conn:       # a rule of the database that our checks do not know about
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE iot_observations ADD CONSTRAINT plausible CHECK (result < 500)")
        else:
            conn.exec_driver_sql("CREATE TRIGGER plausible BEFORE INSERT ON iot_observations WHEN NEW.result >= 500 "
                                 "BEGIN SELECT RAISE(ABORT, 'implausible rainfall'); END")
    with running(scene, mqtt_broker, f"cim-test-{uuid.uuid4().hex[:8]}") as sub:
        publish_observations("127.0.0.1", mqtt_broker.port, ds_id,
                             [{"phenomenonTime": "2020-06-17T15:00:00Z", "result": 513.0}, obs[16]])
        wait_until(lambda: sub.stats.dead_letters == 1 and sub.stats.observations_new == 1, "one dead, one stored")
    assert sub.stats.store_failures == 0 and sub.stats.connects == 1
    with engine.connect() as conn:
        (reason,) = iot.dead_letters(conn)["reason"]
        assert iot.observations(conn, ds_id)["result"].tolist() == [8.7]
    assert reason.startswith("the store refused it: ") and ("plausible" in reason or "implausible" in reason)
