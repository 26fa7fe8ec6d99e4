"""Simulated worlds with known potential outcomes (true p per user x arm, true order value)."""

from promo_opt.simulation.world import (
    SimulatedSample,
    World,
    WorldSpec,
    available_worlds,
    load_world,
    parse_world,
    scenario_dirs,
)

__all__ = [
    "SimulatedSample",
    "World",
    "WorldSpec",
    "available_worlds",
    "load_world",
    "parse_world",
    "scenario_dirs",
]
