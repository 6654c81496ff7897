"""The site views' cells: a node's or a rack's CSS class (by use or by state) and a rack's summary. Values in,
values out; the pages gather the numbers."""

from __future__ import annotations

from typing import Any

__all__ = ["node_css", "rack", "rack_cell", "state_css"]


def rack(domain: int, cells: list[dict[str, Any]], colour: str = "use") -> dict[str, Any]:
    """One cell for a whole rack (NVLink domain), from its nodes' cells; coloured by tenant, the colour of the
    tenant holding most of its GPUs."""
    weights: dict[str, float] = {}
    for c in cells:
        if c["colour"]:
            weights[c["colour"]] = weights.get(c["colour"], 0.0) + c["used"]
    fill = max(sorted(weights), key=lambda k: weights[k]) if colour == "tenant" and weights else None
    return rack_cell(domain, sum(c["gpus"] for c in cells), sum(c["used"] for c in cells),
                     sum(1 for c in cells if c["state"] == "down"), sum(1 for c in cells if c["state"] == "drained"),
                     len(cells), colour, fill)  # fmt: skip


def rack_cell(
    domain: int, gpus: int, used: float, down: int, drained: int, nodes: int, colour: str, fill: str | None
) -> dict[str, Any]:
    """A rack's cell: a node down makes it red; all drained, striped; else by its use (or by tenant, ``fill``)."""
    state = "down" if down else "drained" if drained == nodes else "up"
    css = state_css(state) if colour == "state" else node_css(state, used / gpus if gpus else 0.0)
    if colour == "tenant" and state == "up":
        css = "idle"
    title = (
        f"{used:g}/{gpus} GPUs in use"
        + (f", {down} of {nodes} nodes down" if down else "")
        + (f", {drained} drained" if drained else "")
    )
    return {"domain": domain, "gpus": gpus, "used": used, "down": down, "drained": drained, "nodes": nodes,
            "css": css, "colour": fill, "title": title}  # fmt: skip


def node_css(state: str, used_fraction: float) -> str:
    if state == "down":
        return "down"
    if state == "drained":
        return "drained"
    if used_fraction <= 0:
        return "idle"
    if used_fraction < 0.5:
        return "low"
    if used_fraction < 0.9:
        return "mid"
    if used_fraction < 1:
        return "high"
    return "full"


def state_css(state: str) -> str:
    return "down" if state == "down" else "drained" if state == "drained" else "mid"
