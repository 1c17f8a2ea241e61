"""The broker: a private Mosquitto or embedded amqtt to run, and the files that secure Mosquitto."""
