"""The hub past one machine: a NATS cluster (JetStream, MQTT on every node) and what runs on it."""
