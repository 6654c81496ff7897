"""Self-contained HTML reports with plotly charts.

A report is one HTML file with plotly.js inlined, so it opens offline, from an e-mail attachment or an air-gapped
site. Charts are built from plain arrays; this module knows nothing of engines or simulations.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from gigafactory.report.colours import tenant_colour

__all__ = [
    "STYLE",
    "Report",
    "amount",
    "bar_figure",
    "cdf_figure",
    "figure_div",
    "line_figure",
    "share_figure",
    "share_over_time_figure",
    "shares_figure",
    "tenant_colour",
]


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2933}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #e4e7eb}
.sub{color:#616e7c;margin-top:0} table{border-collapse:collapse;font-size:.9rem}
td,th{padding:.25rem .8rem;border-bottom:1px solid #e4e7eb;text-align:right} th{text-align:left;color:#52606d}
td:first-child{text-align:left} .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:.6rem}
.kpi{background:#f5f7fa;border-radius:6px;padding:.6rem .8rem} .kpi b{display:block;font-size:1.25rem}
.kpi span{color:#616e7c;font-size:.8rem}
"""


@dataclass
class Report:
    title: str
    subtitle: str = ""
    _parts: list[str] = field(default_factory=list)

    def kpis(self, items: Sequence[tuple[str, str]]) -> None:
        cells = "".join(
            f'<div class="kpi"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>' for k, v in items
        )
        self._parts.append(f'<div class="grid">{cells}</div>')

    def heading(self, text: str) -> None:
        self._parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str) -> None:
        self._parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        self._parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure(self, fig: go.Figure) -> None:
        self._parts.append(figure_div(fig))

    def html(self) -> str:
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style>"
            f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
            f"<h1>{html.escape(self.title)}</h1><p class='sub'>{html.escape(self.subtitle)}</p>"
            + "\n".join(self._parts)
            + "</body></html>"
        )


def amount(x: float) -> str:
    """A quantity that reads well at any scale: 1,234,567 / 123 / 1.23 / 0.0123."""
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def figure_div(fig: go.Figure, height: int = 360) -> str:
    """A chart as an HTML fragment, for a page that loads plotly.js itself."""
    fig.update_layout(margin={"l": 60, "r": 20, "t": 40, "b": 50}, height=height, template="plotly_white")
    return str(fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False}))


def line_figure(
    x: np.ndarray,
    series: Mapping[str, np.ndarray],
    *,
    title: str,
    x_title: str,
    y_title: str,
    percent: bool = False,
) -> go.Figure:
    fig = go.Figure()
    for name, y in series.items():
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title)
    if percent:
        fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    return fig


def cdf_figure(samples: Mapping[str, np.ndarray], *, title: str, x_title: str, log_x: bool = True) -> go.Figure:
    """Empirical CDFs, each thinned to at most 2,000 points so reports stay small."""
    fig = go.Figure()
    for name, values in samples.items():
        v = np.sort(np.asarray(values, dtype=float))
        if v.size == 0:
            continue
        if log_x:
            v = np.maximum(v, 1.0)
        idx = np.unique(np.linspace(0, v.size - 1, min(v.size, 2000)).astype(int))
        fig.add_trace(go.Scatter(x=v[idx], y=(idx + 1) / v.size, mode="lines", name=name))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="fraction of jobs")
    fig.update_yaxes(range=[0, 1.01])
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def bar_figure(names: Sequence[str], values: Sequence[float], *, title: str, y_title: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(names), y=list(values)))
    fig.update_layout(title=title, yaxis_title=y_title)
    return fig


def share_over_time_figure(
    t_days: Sequence[float],
    received: Mapping[str, Sequence[float]],
    entitled: Mapping[str, Sequence[float]],
    *,
    title: str,
) -> go.Figure:
    """Each tenant's received share (solid) against its demand-capped entitlement (dashed), in its own colour."""
    fig = go.Figure()
    for name, y in received.items():
        colour = tenant_colour(name)
        fig.add_trace(go.Scatter(x=list(t_days), y=list(y), mode="lines", name=f"{name} received",
                                 line={"color": colour, "width": 2, "shape": "hv"}, legendgroup=name))  # fmt: skip
        fig.add_trace(go.Scatter(x=list(t_days), y=list(entitled[name]), mode="lines", name=f"{name} entitled",
                                 line={"color": colour, "width": 1.5, "dash": "dash", "shape": "hv"},
                                 legendgroup=name))  # fmt: skip
    fig.update_layout(title=title, xaxis_title="day", yaxis_title="share of GPU-hours")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig


def shares_figure(shares: Mapping[str, Any], title: str) -> tuple[go.Figure, str]:
    """:func:`share_over_time_figure` of a share series (``t_s``, ``width_s``, ``tenants``, ``received``,
    ``entitled``); ``title`` may hold ``{per}``. Returns the figure and its period ("hour" or "day")."""
    t0 = shares["t_s"][0]
    per = "hour" if shares["width_s"] < 86_400 else "day"
    fig = share_over_time_figure(
        [(x - t0) / 86_400.0 for x in shares["t_s"]],
        dict(zip(shares["tenants"], shares["received"], strict=True)),
        dict(zip(shares["tenants"], shares["entitled"], strict=True)),
        title=title.format(per=per),
    )
    return fig, per


def share_figure(names: Sequence[str], owed: Sequence[float], received: Sequence[float], *, title: str) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Bar(x=list(names), y=list(owed), name="share owed"))
    fig.add_trace(go.Bar(x=list(names), y=list(received), name="share received"))
    fig.update_layout(title=title, barmode="group", yaxis_title="fraction of GPU-hours")
    fig.update_yaxes(tickformat=".0%")
    return fig
