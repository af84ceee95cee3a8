"""The run's results: the terminal table, docs/benchmarks.md, the SVG plot and the JSON."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from benchmark.stats import Figures, median

CLIENTS = (1, 4, 16, 64)


@dataclass(frozen=True)
class Ratio:
    key: str
    label: str
    numerator: str
    denominator: str | None  # None: the numerator itself is held to the target
    op: str  # ">=", "<=", or "" (context only)
    threshold: float | None

    def value(self, figures: Figures) -> float | None:
        top = figures.value(self.numerator)
        if top is None:
            return None
        if self.denominator is None:
            return top
        bottom = figures.value(self.denominator)
        if not bottom:
            return None
        paired = _paired(figures, self.numerator, self.denominator)
        return top / bottom if paired is None else paired

    def paired(self, figures: Figures) -> bool:
        """Whether the value is the median of per-round ratios (`_paired`)."""
        return self.denominator is not None and \
            _paired(figures, self.numerator, self.denominator) is not None

    @property
    def target(self) -> str:
        if not self.op or self.threshold is None:
            return "—"
        sign = "≥" if self.op == ">=" else "≤"
        return f"{sign} {_number(self.threshold)}"

    def passed(self, value: float | None) -> bool | None:
        if not self.op or self.threshold is None:
            return None
        if value is None:
            return None  # not measured (the phase was left out or failed: see the errors)
        if math.isnan(value):
            return False
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


def _paired(figures: Figures, numerator: str, denominator: str) -> float | None:
    """Two figures measured in the same interleaved rounds (benchmark.rounds): the median
    of their ratios round by round, each of two windows taken side by side, rather than the
    ratio of their medians, which may pair windows of different rounds and so carry the
    machine's drift between them. None when they were not measured round for round."""
    tops, bottoms = figures.rounds.get(numerator), figures.rounds.get(denominator)
    if not tops or len(tops) < 2 or not bottoms or len(tops) != len(bottoms) \
            or not all(bottoms):
        return None  # (with one round the two ways agree)
    return median([top / bottom for top, bottom in zip(tops, bottoms, strict=True)])


def _round_ratios(figures: Figures, ratio: Ratio) -> list[float]:
    assert ratio.denominator is not None
    return [top / bottom for top, bottom in zip(
        figures.rounds[ratio.numerator], figures.rounds[ratio.denominator], strict=True)]


RATIOS = (
    Ratio("ledger_commands/raw_insert_commit", "ledger_commands / raw_insert_commit",
          "ledger_commands", "raw_insert_commit", ">=", 1.0),
    Ratio("ledger_commands/baseline_commands", "ledger_commands / baseline_commands",
          "ledger_commands", "baseline_commands", ">=", 10.0),
    Ratio("http_commands/ledger_commands", "http_commands / ledger_commands",
          "http_commands", "ledger_commands", ">=", 0.5),
    Ratio("http_stock_query_p99_ms", "http_stock_query p99 under the write load (ms)",
          "http_stock_query_p99", None, "<=", 20.0),
    Ratio("bulk_import/raw_copy", "bulk_import / raw_copy",
          "bulk_import", "raw_copy", ">=", 0.3),
    Ratio("projection_rebuild/raw_read", "projection_rebuild / raw_read",
          "projection_rebuild", "raw_read", ">=", 0.3),
    Ratio("projection_rebuild_events_per_s", "projection_rebuild (events/s)",
          "projection_rebuild", None, ">=", 50_000.0),
    Ratio("as_of_query_long/as_of_query_short",
          "as_of_query, long history / 10,000 events (p50)",
          "as_of_query_long", "as_of_query_short", "<=", 1.5),
    Ratio("aggregate_load_long/aggregate_load_short",
          "aggregate_load, long bin / 10 movements (median)",
          "aggregate_load_long", "aggregate_load_short", "<=", 2.0),
    Ratio("baseline_commands/raw_insert_commit",
          "baseline_commands / raw_insert_commit (context: expected near 0.1)",
          "baseline_commands", "raw_insert_commit", "", None),
    Ratio("projection_rebuild/rebuild_output_copy",
          "projection_rebuild / rebuild_output_copy (context)",
          "projection_rebuild", "rebuild_output_copy", "", None),
    Ratio("ledger_commands_64/raw_insert_commit_64",
          "ledger_commands / raw_insert_commit at 64 clients (context)",
          "ledger_commands_64_clients", "raw_insert_commit_64_clients", "", None),
)


def _number(value: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _verdict(passed: bool | None, measured: bool = True) -> str:
    if not measured:
        return "not measured"
    return {True: "PASS", False: "FAIL", None: "—"}[passed]


def ratios(figures: Figures) -> list[tuple[Ratio, float | None, bool | None]]:
    return [(ratio, value, ratio.passed(value))
            for ratio in RATIOS for value in [ratio.value(figures)]]


# Terminal -------------------------------------------------------------------------------------


def print_table(figures: Figures) -> None:
    rows = [(f.number, f.name, _number(f.value), f.unit) for f in figures.items.values()]
    width = max([len(row[1]) for row in rows] + [10])
    print()
    print(f"{'#':>2}  {'figure':<{width}}  {'value':>14}  unit")
    print(f"{'-' * 2}  {'-' * width}  {'-' * 14}  {'-' * 12}")
    for number, name, value, unit in rows:
        print(f"{number:>2}  {name:<{width}}  {value:>14}  {unit}")
    print()
    label_width = max(len(ratio.label) for ratio in RATIOS)
    print(f"{'ratio':<{label_width}}  {'measured':>10}  {'target':>9}  result")
    print(f"{'-' * label_width}  {'-' * 10}  {'-' * 9}  ------")
    for ratio, value, passed in ratios(figures):
        print(f"{ratio.label:<{label_width}}  {_number(value) if value is not None else 'n/a':>10}"
              f"  {ratio.target:>9}  {_verdict(passed, value is not None)}")
    print()


# JSON -----------------------------------------------------------------------------------------


def write_json(figures: Figures, path: Path) -> None:
    document: dict[str, Any] = {
        f.name: {"value": f.value, "unit": f.unit} for f in figures.items.values()}
    document["ratios"] = {
        ratio.key: {"value": value, "op": ratio.op or None, "threshold": ratio.threshold,
                    "pass": passed, "label": ratio.label}
        for ratio, value, passed in ratios(figures)}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


# SVG ------------------------------------------------------------------------------------------

SERIES = (  # key, label, colour, dash
    ("raw", "raw limit: INSERT + COMMIT", "#444444", "6 4"),
    ("ledger", "ledger (application service)", "#1f6fb4", ""),
    ("baseline", "baseline (plain eventsourcing)", "#d9822b", ""),
)


HALO = 'stroke="#ffffff" stroke-width="4" paint-order="stroke" font-weight="bold"'


def _log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 ticks covering [low, high] on a log scale."""
    ticks: list[float] = []
    exponent = math.floor(math.log10(low))
    while True:
        for step in (1, 2, 5):
            value = step * 10.0 ** exponent
            if value >= high * 0.999:
                ticks.append(value)
                return ticks
            if value >= low * 0.999 or (not ticks and step * 2 * 10.0 ** exponent > low):
                ticks.append(value)
        exponent += 1


def _spread(wanted: list[tuple[float, int]], gap: float) -> dict[int, float]:
    """Label y positions near the wanted ones, at least `gap` apart (top to bottom)."""
    placed: dict[int, float] = {}
    previous = -math.inf
    for y_wanted, key in sorted(wanted):
        y_label = max(y_wanted, previous + gap)
        placed[key] = y_label
        previous = y_label
    overshoot = previous - max((y for y, _ in wanted), default=previous)
    if overshoot > 0:  # pushed down past the lowest point: move the whole stack up halfway
        placed = {key: y_label - overshoot / 2 for key, y_label in placed.items()}
    return placed


def svg_plot(curves: dict[str, dict[int, float]], title: str, subtitle: str) -> str:
    """Commands/s against clients: one line per series, log-scaled rates, hand-written SVG."""
    width, height = 860, 480
    left, right, top, bottom = 84, 290, 70, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for series in curves.values() for v in series.values() if v > 0]
    low, high = (min(values), max(values)) if values else (1.0, 10.0)
    ticks = _log_ticks(low / 1.3, high * 1.3)
    y_low, y_high = math.log10(ticks[0]), math.log10(ticks[-1])

    def x(clients: int) -> float:
        return left + 30 + math.log2(clients) / math.log2(CLIENTS[-1]) * (plot_w - 100)

    def y(value: float) -> float:
        share = (math.log10(max(value, ticks[0])) - y_low) / (y_high - y_low)
        return top + plot_h - share * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" '
           'font-size="12">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           f'<text x="{left}" y="28" font-size="16" font-weight="bold">{escape(title)}</text>',
           f'<text x="{left}" y="48" fill="#555555">{escape(subtitle)}</text>']
    for value in ticks:
        out.append(f'<line x1="{left}" y1="{y(value):.1f}" x2="{left + plot_w}" '
                   f'y2="{y(value):.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{left - 8}" y="{y(value) + 4:.1f}" text-anchor="end">'
                   f'{value:,.0f}</text>')
    for clients in CLIENTS:
        out.append(f'<line x1="{x(clients):.1f}" y1="{top}" x2="{x(clients):.1f}" '
                   f'y2="{top + plot_h}" stroke="#f0f0f0"/>')
        out.append(f'<text x="{x(clients):.1f}" y="{top + plot_h + 18}" '
                   f'text-anchor="middle">{clients}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
               'stroke="#333333"/>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 20}" text-anchor="middle">'
               'concurrent clients</text>')
    out.append(f'<text transform="translate(24 {top + plot_h / 2:.1f}) rotate(-90)" '
               'text-anchor="middle">commands per second (log scale)</text>')
    # Every point's label sits right of its point, nudged apart from its neighbours.
    shown = [(key, colour) for key, _, colour, _ in SERIES] + [("http", "#2e8b57")]
    labels: dict[tuple[str, int], float] = {}
    for clients in CLIENTS:
        wanted = [(y(curves[key][clients]), n) for n, (key, _) in enumerate(shown)
                  if clients in curves.get(key, {})]
        for n, y_label in _spread(wanted, 16).items():
            labels[(shown[n][0], clients)] = y_label
    legend_y = top + 10
    for key, label, colour, dash in SERIES:
        series = curves.get(key, {})
        points = [(x(c), y(series[c])) for c in CLIENTS if c in series]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                       f'stroke-width="2.5"{dash_attr}/>')
        for clients in CLIENTS:
            if clients in series:
                px, py = x(clients), y(series[clients])
                out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4.5" fill="{colour}"/>')
                out.append(f'<text x="{px + 8:.1f}" y="{labels[(key, clients)] + 4:.1f}" '
                           f'fill="{colour}" {HALO}>'
                           f'{_number(series[clients])}</text>')
        lx = left + plot_w + 20
        out.append(f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 26}" y2="{legend_y}" '
                   f'stroke="{colour}" stroke-width="2.5"{dash_attr}/>')
        out.append(f'<circle cx="{lx + 13}" cy="{legend_y}" r="4" fill="{colour}"/>')
        out.append(f'<text x="{lx + 34}" y="{legend_y + 4}">{escape(label)}</text>')
        legend_y += 24
    http = curves.get("http", {})
    if 16 in http:
        px, py = x(16), y(http[16])
        colour = "#2e8b57"
        out.append(f'<path d="M {px:.1f} {py - 6:.1f} L {px + 6:.1f} {py:.1f} L {px:.1f} '
                   f'{py + 6:.1f} L {px - 6:.1f} {py:.1f} Z" fill="{colour}"/>')
        out.append(f'<text x="{px + 8:.1f}" y="{labels[("http", 16)] + 4:.1f}" '
                   f'fill="{colour}" {HALO}>{_number(http[16])}</text>')
        lx = left + plot_w + 20
        out.append(f'<path d="M {lx + 13} {legend_y - 6} L {lx + 19} {legend_y} L {lx + 13} '
                   f'{legend_y + 6} L {lx + 7} {legend_y} Z" fill="{colour}"/>')
        out.append(f'<text x="{lx + 34}" y="{legend_y + 4}">ledger via HTTP API (16 clients)'
                   '</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# Markdown -------------------------------------------------------------------------------------


def markdown(figures: Figures, *, mode: str, date: str, machine: dict[str, str],
             curves: dict[str, dict[int, float]], svg_name: str, command: str,
             duration: float, load_before: str, load_after: str, methods: list[str]) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `{command}` on {date} ({mode} run, {duration:.0f} s). Absolute figures "
        "vary between machines; the targets of issue 7 are ratios, all measured in this one "
        "run on this one machine. Regenerate with `scripts/bench` (the full run, at least "
        "1,000,000 events for the import and the rebuild) or `scripts/bench --quick` "
        "(under 2 minutes, smaller counts).",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
    ]
    lines += [f"| {key} | {escape(value, quote=False)} |" for key, value in machine.items()]
    lines += [f"| Load average (1, 5, 15 min) before / after | {load_before} / {load_after} |",
              "",
              "## Ratios against the targets",
              "",
              "| ratio | measured | target | result |",
              "| --- | ---: | ---: | --- |"]
    paired = []
    for ratio, value, passed in ratios(figures):
        shown = _number(value) if value is not None else "n/a"
        verdict = _verdict(passed, value is not None)
        marked = ratio.label
        if ratio.paired(figures):
            marked += " ¹"
            paired.append(ratio)
        lines.append(f"| {marked} | {shown} | {ratio.target} | "
                     f"{'**' + verdict + '**' if passed is not None else verdict} |")
    if paired:
        lines += ["", "¹ The median of the ratios round by round (the 16-client windows run "
                  "in interleaved rounds; see How each figure is measured): " + "; ".join(
                      f"{ratio.label}: " + ", ".join(_number(value) for value in _round_ratios(
                          figures, ratio)) for ratio in paired) + "."]
    lines += ["",
              "## Figures",
              "",
              "| # | figure | value | unit | what |",
              "| --- | --- | ---: | --- | --- |"]
    for f in figures.items.values():
        lines.append(f"| {f.number} | `{f.name}` | {_number(f.value)} | {f.unit} | {f.what} |")
    lines += ["",
              "## Commands per second against concurrent clients",
              "",
              f"![commands per second against concurrent clients]({svg_name})",
              "",
              "| clients | raw INSERT + COMMIT | ledger | baseline |",
              "| ---: | ---: | ---: | ---: |"]
    for clients in CLIENTS:
        row = [_number(curves.get(key, {}).get(clients, float("nan")))
               for key in ("raw", "ledger", "baseline")]
        lines.append(f"| {clients} | {' | '.join(row)} |")
    if 16 in curves.get("http", {}):
        lines += ["", f"Through the HTTP API with 16 clients: "
                      f"{_number(curves['http'][16])} requests/s."]
    lines += ["", "## How each figure is measured", ""]
    lines += [f"- {method}" for method in methods]
    lines += ["", "## Problems found in this run", ""]
    if figures.notes or figures.errors:
        lines += [f"- {note}" for note in figures.notes]
        lines += [f"- **Phase failed:** {error}" for error in figures.errors]
    else:
        lines.append("- None.")
    lines.append("")
    return "\n".join(lines)
