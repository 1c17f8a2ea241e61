"""The hub's MQTT client: paho on the asyncio loop, and its TLS."""
