"""Built-in networks, chosen by name: ``eu-2030`` (the EU plan: five AI gigafactories and six AI factories) and
``pair`` (two small sites, for trying things and for tests).

Every figure of ``eu-2030`` and its public source is in ``docs/network.md``; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Callable

from gigafactory.core.registry import Registry
from gigafactory.network.model import Network, SiteSpec

__all__ = ["NETWORK_PRESETS", "network_preset"]

NETWORK_PRESETS: Registry[tuple[str, Callable[[], Network]]] = Registry("network preset")

# Electricity: Eurostat nrg_pc_205 (non-household), 2024-S2, band IC (500-1,999 MWh a year), excluding VAT and other
# recoverable taxes; EUR/kWh × 1000 = EUR/MWh. Carbon: Ember, 2023 (life-cycle gCO2e/kWh; the EEA's direct-emission
# figures run lower, most for FR, SE and FI). PUE: estimates from Uptime Institute's surveys (average 1.56 in 2024;
# new large sites 1.3 or better; climate the biggest factor) and Google's fleet (1.10 in 2023): 1.15 in the
# Nordics, 1.3 in central and western Europe, 1.4 in the south. docs/network.md gives each source.
# (site name, preset, country, EUR/MWh, gCO2e/kWh, PUE)
_EU_2030: tuple[tuple[str, str, str, float, float, float], ...] = (
    # five AI gigafactories, about 100,000 GPUs each
    ("de-gigafactory", "gb200-nvl72:racks=1389", "DE", 235.9, 381.0, 1.3),
    ("fr-gigafactory", "gb200-nvl72:racks=1389", "FR", 178.5, 56.0, 1.3),
    ("es-gigafactory", "gb200-nvl72:racks=1389", "ES", 142.6, 174.0, 1.4),
    ("it-gigafactory", "hgx-h100:nodes=12500", "IT", 227.4, 331.0, 1.4),
    ("fi-gigafactory", "gb200-nvl72:racks=1389", "FI", 76.7, 79.0, 1.15),
    # six AI factories, 10,000-12,000 GPUs each
    ("se-ai-factory", "hgx-h100:nodes=1250", "SE", 85.3, 41.0, 1.15),
    ("pl-ai-factory", "hgx-h100:nodes=1250", "PL", 210.0, 662.0, 1.3),
    ("nl-ai-factory", "gb200-nvl72:racks=139", "NL", 198.3, 268.0, 1.3),
    ("ie-ai-factory", "hgx-h100:nodes=1500", "IE", 255.2, 291.0, 1.3),
    ("pt-ai-factory", "hgx-h100:nodes=1250", "PT", 133.2, 166.0, 1.4),
    ("cz-ai-factory", "hgx-h100:nodes=1250", "CZ", 193.9, 450.0, 1.3),
)


def _eu_2030() -> Network:
    return Network(
        "eu-2030",
        tuple(
            SiteSpec(name, preset, country, price, carbon, pue, source="docs/network.md")
            for name, preset, country, price, carbon, pue in _EU_2030
        ),
    )


def _pair() -> Network:
    return Network(
        "pair",
        (
            SiteSpec("de-1", "hgx-h100:nodes=16", "DE", 235.9, 381.0, 1.3),
            SiteSpec("fr-1", "hgx-h100:nodes=16", "FR", 178.5, 56.0, 1.3),
        ),
    )


NETWORK_PRESETS.add(
    "eu-2030", ("5 AI gigafactories (~100k GPUs) and 6 AI factories (10-12k), in 11 member states", _eu_2030)
)
NETWORK_PRESETS.add("pair", ("two 128-GPU H100 sites, in Germany and France", _pair))


def network_preset(name: str) -> Network:
    return NETWORK_PRESETS.get(name)[1]()
