"""What a rules reload may change, and what only a restart can.

A reload adopts the release rules: labels, groups, releases, sensors'
``release_to`` and labels, partners' clearance. The registry itself (which
sensors and partners exist, a sensor's nation and kind) sizes the trackers and
keys every table, so changing it is refused; other sections are reported as
waiting for a restart.
"""

from __future__ import annotations

import msgspec

from hub.config import HubConfig
from hub.errors import ConfigError
from hub.release.policy import ReleasePolicy

RESTART_SECTIONS = ("mission", "broker", "broker_server", "ingest", "fusion", "publish")


def registry(config: HubConfig) -> tuple[tuple[object, ...], ...]:
    """What identifies the registry: sensors (id, nation, kind, platform) and partner ids."""
    sensors = tuple((s.id, s.nation, s.kind, s.platform) for s in config.sensors)
    return sensors, tuple(p.id for p in config.partners)


def restart_needed(old: HubConfig, new: HubConfig) -> list[str]:
    """Sections of ``new`` a reload cannot apply; ConfigError if the registry changed."""
    if registry(old) != registry(new):
        raise ConfigError("the registry changed (sensors, partners, or a sensor's nation or "
                          "kind): restart the hub to apply it; the rules are unchanged")
    return [f"$.{name}" for name in RESTART_SECTIONS if getattr(old, name) != getattr(new, name)]


def with_rules_of(config: HubConfig, source: HubConfig) -> HubConfig:
    """``config`` with the release rules (and only those) of ``source``."""
    return msgspec.structs.replace(config, sensors=source.sensors, partners=source.partners,
                                   labels=source.labels, groups=source.groups,
                                   releases=source.releases)


def changed_partners(old: ReleasePolicy, new: ReleasePolicy) -> list[str]:
    """Partners whose grants differ between two policies: their old view must be withdrawn."""
    return [p for p, rules in new.partners.items() if rules.grants != old.partners[p].grants]
