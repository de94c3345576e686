"""The SensorThings MQTT extension for the service: observations published by clients to
``v1.1/Datastreams(<id>)/Observations`` are stored (the `ingest.mqtt` subscriber, in a thread), and observations
created over HTTP are published there for subscribers."""

from __future__ import annotations

import json
import logging
import threading
import uuid

from api.settings import Settings

__all__ = ["MQTTBridge"]

log = logging.getLogger(__name__)


class MQTTBridge:
    """A subscriber thread storing published observations, and a publisher of new ones (QoS 1)."""

    def __init__(self, settings: Settings, scene) -> None:
        from cim.errors import require

        mqtt = require("paho.mqtt.client", "io")
        from ingest.mqtt import MQTTSubscriber, login

        self.host, self.port = settings.mqtt_host, settings.mqtt_port
        self._stop = threading.Event()
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        self.subscriber = MQTTSubscriber(scene.store.engine, self.host, self.port, client_id=settings.mqtt_client_id,
                                         username=settings.mqtt_username, password=password, tls=settings.mqtt_tls,
                                         audit=True)
        self._thread = threading.Thread(target=self.subscriber.run, args=(self._stop,), name="cim-mqtt-subscriber",
                                        daemon=True)
        self.publisher = login(mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                           client_id=f"{settings.mqtt_client_id}-pub-{uuid.uuid4().hex[:8]}",
                                           protocol=mqtt.MQTTv311), settings.mqtt_username, password, settings.mqtt_tls)

    @classmethod
    def start(cls, settings: Settings, scene, wait: float = 10.0) -> MQTTBridge:
        bridge = cls(settings, scene)
        bridge._thread.start()
        bridge.publisher.connect_async(bridge.host, bridge.port, keepalive=30)
        bridge.publisher.loop_start()
        if not bridge.subscriber.ready.wait(wait):
            log.warning("MQTT broker %s:%s has not acknowledged the subscription yet; retrying in the background",
                        bridge.host, bridge.port)
        return bridge

    @property
    def ready(self) -> threading.Event:
        return self.subscriber.ready

    def publish(self, datastream_id: int, observation: dict) -> None:
        """Publish one observation (QoS 1) to its Datastream's topic; a broker that is away loses nothing stored."""
        topic = f"v1.1/Datastreams({int(datastream_id)})/Observations"
        info = self.publisher.publish(topic, json.dumps(observation), qos=1)
        if info.rc != 0:
            log.warning("could not publish to %s (rc %s); the observation is stored", topic, info.rc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.publisher.disconnect()
        self.publisher.loop_stop()
