"""Drone and sensor feed hub: MQTT in, fused per-partner operating picture out."""

__version__ = "0.1.0"
