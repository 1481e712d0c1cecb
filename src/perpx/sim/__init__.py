"""Simulation: agents trading against the engine on a price feed's clock, and what they did.

Everything here is an adapter around the pure core: it stamps commands like the sequencer,
reads no wall clock, and draws randomness only from seeded generators.
"""

from perpx.sim.agents import Agent, MarketMaker, MarketView, NoiseTrader, noise_population
from perpx.sim.report import FundingRecord, ReportBuilder, SimulationReport
from perpx.sim.runner import Simulation

__all__ = [
    "Agent",
    "FundingRecord",
    "MarketMaker",
    "MarketView",
    "NoiseTrader",
    "ReportBuilder",
    "Simulation",
    "SimulationReport",
    "noise_population",
]
