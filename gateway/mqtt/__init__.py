"""MQTT diagnostics: topics and payloads, Home Assistant discovery (pure), aiomqtt publisher.

- ``config``: ``MqttConfig``, the ``[mqtt]`` settings section;
- ``topics``, ``payloads``, ``commands``, ``discovery``: pure (no I/O, no clock);
- ``publisher``: ``MqttPublisher``, the only module that imports aiomqtt;
- ``broker``: ``LocalBroker``, a loopback broker for the demo and benchmarks.

Nothing is imported here, so that reading the settings never imports aiomqtt.
"""
