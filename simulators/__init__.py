"""Simulated field units (ground radars, UAVs) and ground truth for the hub."""

from simulators.engine import DEFAULT_START_TS, generate, write_recording
from simulators.scenario import Scenario, load_scenario, parse_scenario

__all__ = ["DEFAULT_START_TS", "Scenario", "generate", "load_scenario", "parse_scenario",
           "write_recording"]
