"""MQTT diagnostics: topics and payloads, Home Assistant discovery (pure), aiomqtt publisher."""
