"""MQTT diagnostics: topics and payloads, Home Assistant discovery (pure), aiomqtt publisher.

- ``config``: ``MqttConfig``, the ``[mqtt]`` settings section;
- ``topics``, ``payloads`` (one module per topic), ``commands``, ``discovery``: pure (no I/O,
  no clock; ``discovery.HaDiscovery`` sends through a callable it is given);
- ``publisher``: ``MqttPublisher``, the adapter the gateway runs, made of ``outbox`` (the
  bounded queue), ``session`` (one connection, reconnect bookkeeping), ``scheduler`` (rates),
  ``inbox`` (commands and replies) and ``tls``; only ``publisher`` and ``session`` import
  aiomqtt;
- ``broker``: ``LocalBroker``, a loopback broker for the demo and benchmarks.

Nothing is imported here, so that reading the settings never imports aiomqtt.
"""
