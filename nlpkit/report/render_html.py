"""``report.html``: one self-contained page (inline CSS and SVG, no scripts, no network).

Charts are drawn here as SVG strings so the file opens anywhere, offline, years later: the headline
metric with interval whiskers, the difference to the baseline, quality against prediction cost, the
micro-averaged precision-recall curves and a per-label F1 heatmap. Hovering a mark shows its exact
values (SVG ``<title>``).
"""

from __future__ import annotations

import math
from html import escape

from nlpkit.report.compare import format_p, format_signed
from nlpkit.report.leakage import leakage_line
from nlpkit.report.render_text import (
    ERRORS_INTRO,
    chosen_by_text,
    cost_note,
    curve_table,
    comparison_notes,
    error_summary,
    example_kinds,
    fmt_labels,
    fmt_top_scores,
    label_differences_text,
    seeds_lines,
    fmt_bytes,
    fmt_rate,
    fmt_value,
    leaderboard_cells,
    leaderboard_columns,
)

# Tableau 10: distinguishable, colour-blind friendlier than the default matplotlib cycle.
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
BETTER, WORSE, NEUTRAL = "#2e7d32", "#c62828", "#757575"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

CSS = f"""
* {{ box-sizing: border-box; }}
body {{ font-family: {FONT}; margin: 0; color: #1f2328; background: #fff; }}
main {{ max-width: 1320px; margin: 0 auto; padding: 20px 24px 40px; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }}
h2 {{ font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }}
h3 {{ font-size: 14px; margin: 0 0 6px; }}
p.meta {{ color: #57606a; font-size: 13px; margin: 2px 0; }}
ul.verdicts {{ font-size: 15px; line-height: 1.5; padding-left: 20px; }}
ul.verdicts li.better::marker {{ color: {BETTER}; }}
ul.verdicts li.worse::marker {{ color: {WORSE}; }}
table.board {{ border-collapse: collapse; font-size: 13px; width: 100%; }}
table.board th, table.board td {{ padding: 5px 8px; border-bottom: 1px solid #eaeef2; text-align: right;
  white-space: nowrap; }}
table.board th {{ background: #f6f8fa; position: sticky; top: 0; }}
table.board td.l, table.board th.l {{ text-align: left; }}
table.board tr.baseline td {{ background: #fff8e1; font-weight: 600; }}
.swatch {{ display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(600px, 1fr)); gap: 20px; }}
.card {{ border: 1px solid #d0d7de; border-radius: 6px; padding: 12px; overflow-x: auto; }}
.card p.note {{ color: #57606a; font-size: 12px; margin: 6px 0 0; }}
svg {{ max-width: 100%; height: auto; display: block; }}
svg text {{ font-family: {FONT}; }}
footer {{ color: #57606a; font-size: 12px; margin-top: 28px; line-height: 1.5; }}
p.headline {{ font-size: 16px; line-height: 1.5; margin: 12px 0; padding: 10px 14px; background: #f6f8fa;
  border-left: 4px solid #4e79a7; }}
table.agree {{ border-collapse: collapse; font-size: 13px; margin: 4px 0 8px; }}
table.agree th, table.agree td {{ padding: 4px 10px; border: 1px solid #d0d7de; text-align: right; }}
table.agree th.l {{ text-align: left; background: #f6f8fa; }}
.errors p, .errors li {{ font-size: 13px; line-height: 1.45; overflow-wrap: anywhere; }}
.errors ul.examples {{ padding-left: 18px; }}
.errors blockquote {{ margin: 3px 0 8px; padding: 2px 10px; border-left: 3px solid #d0d7de; color: #424a53; }}
.cm-pair {{ display: flex; flex-wrap: wrap; gap: 20px; }}
.cm-pair .card {{ flex: 1 1 auto; max-width: 100%; }}
table.confusion {{ border-collapse: collapse; font-size: 11px; }}
table.confusion th, table.confusion td {{ padding: 2px 4px; border: 1px solid #eaeef2; text-align: right;
  min-width: 26px; }}
table.confusion th.l {{ text-align: left; font-weight: normal; max-width: 190px; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; }}
"""


def _e(text) -> str:
    return escape(str(text), quote=True)


def _n(x: float) -> str:
    """Compact SVG coordinate."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _colours(report: dict) -> dict[str, str]:
    return {row["name"]: PALETTE[i % len(PALETTE)] for i, row in enumerate(report["rows"])}


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">' + "".join(body) + "</svg>")


def _text(x, y, s, *, anchor="start", size=12, fill="#1f2328", weight="normal", extra="") -> str:
    return (f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}" fill="{fill}" text-anchor="{anchor}" '
            f'font-weight="{weight}"{extra}>{_e(s)}</text>')


def _label_text(s: str, limit: int = 26) -> str:
    return s if len(s) <= limit else s[: limit - 1] + "…"


# --- charts -----------------------------------------------------------------------------------

def chart_metric_bars(report: dict, width: int = 620) -> str:
    """Horizontal bars of the headline metric, 95 % interval whiskers, the baseline marked."""
    rows, s = report["rows"], report["settings"]
    colours = _colours(report)
    left, right, top, row_h = 170, 70, 26, 30
    height = top + row_h * len(rows) + 34
    hi_all = max(r["metric"]["hi"] for r in rows)
    x_max = 1.0 if hi_all <= 1.0 else hi_all * 1.05
    x_max = x_max if x_max > 0 else 1.0
    plot_w = width - left - right
    sx = lambda v: left + plot_w * max(0.0, v) / x_max
    body = []
    for t in _ticks(0.0, x_max):
        x = sx(t)
        body.append(f'<line x1="{_n(x)}" y1="{top - 6}" x2="{_n(x)}" y2="{height - 30}" stroke="#eaeef2"/>')
        body.append(_text(x, height - 14, f"{t:g}", anchor="middle", size=11, fill="#57606a"))
    for i, r in enumerate(rows):
        y = top + i * row_h
        m = r["metric"]
        colour = colours[r["name"]]
        name = _label_text(r["label"]) + (" ★" if r["is_baseline"] else "")
        tip = f"{r['label']}: {s['metric_label']} {m['point']:.4f} [{m['lo']:.4f}, {m['hi']:.4f}]"
        body.append(_text(left - 8, y + 15, name, anchor="end", weight="600" if r["is_baseline"] else "normal"))
        body.append(f'<g><title>{_e(tip)}</title>'
                    f'<rect x="{left}" y="{y + 4}" width="{_n(sx(m["point"]) - left)}" height="16" rx="2" '
                    f'fill="{colour}" fill-opacity="0.85"/>'
                    f'<line x1="{_n(sx(m["lo"]))}" y1="{y + 12}" x2="{_n(sx(m["hi"]))}" y2="{y + 12}" '
                    f'stroke="#1f2328" stroke-width="1.5"/>'
                    f'<line x1="{_n(sx(m["lo"]))}" y1="{y + 6}" x2="{_n(sx(m["lo"]))}" y2="{y + 18}" stroke="#1f2328"/>'
                    f'<line x1="{_n(sx(m["hi"]))}" y1="{y + 6}" x2="{_n(sx(m["hi"]))}" y2="{y + 18}" stroke="#1f2328"/>'
                    "</g>")
        body.append(_text(sx(m["hi"]) + 6, y + 16, f"{m['point']:.3f}", size=11))
    body.append(f'<line x1="{left}" y1="{top - 6}" x2="{left}" y2="{height - 30}" stroke="#8c959f"/>')
    return _svg(width, height, body, f"{s['metric_label']} per run with 95% intervals")


def chart_diffs(report: dict, width: int = 620) -> str:
    """Difference to the baseline with its paired 95 % interval; green/red when significant."""
    rows, s = report["rows"], report["settings"]
    left, right, top, row_h = 170, 140, 26, 30
    height = top + row_h * len(rows) + 34
    # Scale to the real models: the majority floor is usually far below and would squash every
    # other interval into a dot; a row beyond the scale is drawn clipped with an arrow at the edge.
    compared = [r for r in rows if r["diff"]]
    scaled = [r for r in compared if r["model"] != "majority"] or compared
    extent = max([abs(v) for r in scaled for v in (r["diff"]["lo"], r["diff"]["hi"])] + [0.005])
    extent *= 1.1
    plot_w = width - left - right
    sx = lambda v: left + plot_w * (min(max(v, -extent), extent) + extent) / (2 * extent)
    body = []
    for t in _ticks(-extent, extent, 6):
        x = sx(t)
        body.append(f'<line x1="{_n(x)}" y1="{top - 6}" x2="{_n(x)}" y2="{height - 30}" stroke="#eaeef2"/>')
        body.append(_text(x, height - 14, format_signed(t, 3) if t else "0", anchor="middle", size=11, fill="#57606a"))
    body.append(f'<line x1="{_n(sx(0))}" y1="{top - 6}" x2="{_n(sx(0))}" y2="{height - 30}" stroke="#57606a" '
                'stroke-dasharray="4 3"/>')
    for i, r in enumerate(rows):
        y = top + i * row_h + 12
        body.append(_text(left - 8, y + 4, _label_text(r["label"]), anchor="end",
                          weight="600" if r["is_baseline"] else "normal"))
        d = r["diff"]
        if not d:
            body.append(_text(sx(0) + 6, y + 4, "baseline", size=11, fill="#57606a"))
            continue
        colour = NEUTRAL if not d["significant"] else (BETTER if d["better"] else WORSE)
        tip = (f"{r['label']} − baseline: {format_signed(d['point'], 4)} "
               f"[{format_signed(d['lo'], 4)}, {format_signed(d['hi'], 4)}], {format_p(d.get('p_holm', d['p_value']))}")
        body.append(f'<g><title>{_e(tip)}</title>'
                    f'<line x1="{_n(sx(d["lo"]))}" y1="{y}" x2="{_n(sx(d["hi"]))}" y2="{y}" stroke="{colour}" '
                    f'stroke-width="2.5"/>'
                    f'<circle cx="{_n(sx(d["point"]))}" cy="{y}" r="5" fill="{colour}"/></g>')
        for end, sign in ((d["lo"], -1), (d["hi"], 1)):
            if abs(end) > extent and end * sign > 0:  # clipped: an arrow head at the edge
                x = sx(end)
                body.append(f'<path d="M{_n(x + sign * 7)},{y} L{_n(x)},{y - 5} L{_n(x)},{y + 5} Z" fill="{colour}"/>')
        body.append(_text(width - right + 8, y + 4, f"{format_signed(d['point'])}, {format_p(d.get('p_holm', d['p_value']))}",
                          size=11, fill=colour))
    return _svg(width, height, body, f"difference in {s['metric_label']} to the baseline")


def chart_cost(report: dict, width: int = 620, height: int = 360) -> str:
    """Headline metric (with interval) against prediction throughput, docs/s on a log scale."""
    s = report["settings"]
    colours = _colours(report)
    rows = [r for r in report["rows"] if r["predict_docs_per_s"]]
    left, right, top, bottom = 60, 30, 16, 46
    body = []
    if not rows:
        body.append(_text(width / 2, height / 2, "no run records its prediction throughput", anchor="middle"))
        return _svg(width, height, body, "quality against prediction cost")
    rates = [r["predict_docs_per_s"] for r in rows]
    lo_x = math.floor(math.log10(min(rates)) - 0.15)
    hi_x = math.ceil(math.log10(max(rates)) + 0.15)
    lo_y = min(r["metric"]["lo"] for r in rows)
    hi_y = max(r["metric"]["hi"] for r in rows)
    pad = max((hi_y - lo_y) * 0.12, 0.01)
    lo_y, hi_y = lo_y - pad, hi_y + pad
    pw, ph = width - left - right, height - top - bottom
    sx = lambda v: left + pw * (math.log10(v) - lo_x) / (hi_x - lo_x)
    sy = lambda v: top + ph * (1 - (v - lo_y) / (hi_y - lo_y))
    for e in range(lo_x, hi_x + 1):
        x = left + pw * (e - lo_x) / (hi_x - lo_x)
        body.append(f'<line x1="{_n(x)}" y1="{top}" x2="{_n(x)}" y2="{top + ph}" stroke="#eaeef2"/>')
        body.append(_text(x, top + ph + 16, fmt_rate(10.0 ** e), anchor="middle", size=11, fill="#57606a"))
    for t in _ticks(lo_y, hi_y, 5):
        y = sy(t)
        body.append(f'<line x1="{left}" y1="{_n(y)}" x2="{left + pw}" y2="{_n(y)}" stroke="#eaeef2"/>')
        body.append(_text(left - 6, y + 4, f"{t:.3g}", anchor="end", size=11, fill="#57606a"))
    body.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#8c959f"/>')
    body.append(_text(left + pw / 2, height - 8, "prediction throughput, documents per second (log scale) → cheaper",
                      anchor="middle", size=12))
    body.append(_text(14, top + ph / 2, s["metric_label"], anchor="middle", size=12,
                      extra=f' transform="rotate(-90 14 {_n(top + ph / 2)})"'))
    placed: list[tuple[float, float, float]] = []  # label boxes (x0, x1, baseline y) already drawn
    for r in sorted(rows, key=lambda r: sy(r["metric"]["point"])):
        m = r["metric"]
        x, y = sx(r["predict_docs_per_s"]), sy(m["point"])
        colour = colours[r["name"]]
        tip = (f"{r['label']}: {s['metric_label']} {m['point']:.4f} [{m['lo']:.4f}, {m['hi']:.4f}], "
               f"{fmt_rate(r['predict_docs_per_s'])} docs/s, model {fmt_bytes(r['model_size_bytes'])}")
        shape = (f'<rect x="{_n(x - 6)}" y="{_n(y - 6)}" width="12" height="12" fill="{colour}" stroke="#1f2328"/>'
                 if r["is_baseline"] else f'<circle cx="{_n(x)}" cy="{_n(y)}" r="6" fill="{colour}" stroke="#1f2328"/>')
        body.append(f'<g><title>{_e(tip)}</title>'
                    f'<line x1="{_n(x)}" y1="{_n(sy(m["lo"]))}" x2="{_n(x)}" y2="{_n(sy(m["hi"]))}" '
                    f'stroke="{colour}" stroke-width="2"/>{shape}</g>')
        anchor = "end" if x > left + pw * 0.7 else "start"
        dx = -10 if anchor == "end" else 10
        text = _label_text(r["label"], 22)
        text_w = 6.2 * len(text)
        x0 = x + dx - (text_w if anchor == "end" else 0)
        ty = y - 8
        # Runs with similar cost and quality: move a label down until it overlaps no earlier one.
        while any(abs(ty - py) < 13 and x0 < px1 and px0 < x0 + text_w for px0, px1, py in placed):
            ty += 13
        placed.append((x0, x0 + text_w, ty))
        if ty - (y - 8) > 13:
            body.append(f'<line x1="{_n(x)}" y1="{_n(y)}" x2="{_n(x + dx / 2)}" y2="{_n(ty - 4)}" stroke="#8c959f"/>')
        body.append(_text(x + dx, ty, text, anchor=anchor, size=11))
    return _svg(width, height, body, "quality against prediction cost")


def chart_pr(report: dict, width: int = 620) -> str:
    """Micro-averaged precision-recall curve per run (all document-label pairs pooled)."""
    colours = _colours(report)
    rows = report["rows"]
    left, right, top, ph = 56, 20, 16, 260
    legend_rows = (len(rows) + 1) // 2
    height = top + ph + 46 + 18 * legend_rows
    pw = width - left - right
    sx = lambda v: left + pw * v
    sy = lambda v: top + ph * (1 - v)
    body = []
    for t in _ticks(0, 1, 5):
        body.append(f'<line x1="{_n(sx(t))}" y1="{top}" x2="{_n(sx(t))}" y2="{top + ph}" stroke="#eaeef2"/>')
        body.append(f'<line x1="{left}" y1="{_n(sy(t))}" x2="{left + pw}" y2="{_n(sy(t))}" stroke="#eaeef2"/>')
        body.append(_text(sx(t), top + ph + 16, f"{t:g}", anchor="middle", size=11, fill="#57606a"))
        body.append(_text(left - 8, sy(t) + 4, f"{t:g}", anchor="end", size=11, fill="#57606a"))
    body.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#8c959f"/>')
    body.append(_text(left + pw / 2, top + ph + 34, "recall (micro)", anchor="middle"))
    body.append(_text(14, top + ph / 2, "precision (micro)", anchor="middle",
                      extra=f' transform="rotate(-90 14 {_n(top + ph / 2)})"'))
    for i, r in enumerate(rows):
        curve = report["pr_curves"].get(r["name"]) or {}
        colour = colours[r["name"]]
        if curve.get("recall"):
            pts = " ".join(f"{_n(sx(x))},{_n(sy(y))}" for x, y in zip(curve["recall"], curve["precision"]))
            ap = curve.get("average_precision")
            body.append(f'<g><title>{_e(r["label"])}: average precision {fmt_value(ap, 4)}</title>'
                        f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2" '
                        f'stroke-linejoin="round"/></g>')
        x = left + (pw / 2) * (i % 2)
        y = top + ph + 56 + 18 * (i // 2)
        body.append(f'<rect x="{_n(x)}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        body.append(_text(x + 18, y, f"{_label_text(r['label'], 30)}: AP {fmt_value(curve.get('average_precision'))}",
                          size=11))
    return _svg(width, height, body, "micro-averaged precision-recall curves")


def _heat_colour(v: float) -> tuple[str, str]:
    """White → dark blue for F1 in [0, 1]; text colour that stays readable on it."""
    lo, hi = (247, 251, 255), (8, 48, 107)
    rgb = tuple(round(a + (b - a) * v) for a, b in zip(lo, hi))
    return "#{:02x}{:02x}{:02x}".format(*rgb), ("#ffffff" if v > 0.55 else "#1f2328")


def heatmap_labels(report: dict) -> list[dict]:
    """Rows of the heatmap: the most frequent and the most different labels, by training frequency."""
    pl = report["per_label"]
    wanted = set(pl["most_frequent"]) | set(pl["most_different"])
    rows = [d for d in pl["labels"] if d["label"] in wanted]
    return sorted(rows, key=lambda d: (-d["train_support"], -d["test_support"], d["label"]))


def chart_heatmap(report: dict) -> str:
    """Per-label F1: labels × runs, train/test support beside each label, spread at the right."""
    pl = report["per_label"]
    label_of = {r["name"]: r["label"] for r in report["rows"]}
    rows = heatmap_labels(report)
    different = set(pl["most_different"])
    runs = pl["runs"]
    left, head, row_h = 300, 110, 22
    cell_w = max(56, min(110, (1260 - left - 80) // max(1, len(runs))))
    width = left + cell_w * len(runs) + 80
    height = head + row_h * len(rows) + 10
    body = [_text(left - 8, head - 8, "label  (train / test docs)", anchor="end", size=11, fill="#57606a"),
            _text(left + cell_w * len(runs) + 40, head - 8, "spread", anchor="middle", size=11, fill="#57606a")]
    for j, name in enumerate(runs):
        x = left + cell_w * j + cell_w / 2
        body.append(_text(x, head - 10, _label_text(label_of[name], 22), size=11,
                          extra=f' transform="rotate(-35 {_n(x)} {head - 10})"'))
    for i, d in enumerate(rows):
        y = head + i * row_h
        mark = " ◆" if d["label"] in different else ""
        body.append(_text(left - 8, y + 15, f"{_label_text(d['label'], 24)}{mark}  ({d['train_support']:,} / "
                          f"{d['test_support']:,})", anchor="end", size=12))
        for j, name in enumerate(runs):
            v = d["f1"].get(name)
            x = left + cell_w * j
            if v is None:
                fill, ink, txt = "#eaeef2", "#57606a", "–"
            else:
                (fill, ink), txt = _heat_colour(v), f"{v:.2f}"
            tip = f"{d['label']} / {label_of[name]}: F1 {txt} (test support {d['test_support']})"
            body.append(f'<g><title>{_e(tip)}</title><rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" '
                        f'height="{row_h - 2}" fill="{fill}"/>'
                        + _text(x + cell_w / 2, y + 15, txt, anchor="middle", size=11, fill=ink) + "</g>")
        body.append(_text(left + cell_w * len(runs) + 40, y + 15, f"{d['spread']:.2f}", anchor="middle", size=11))
    return _svg(width, height, body, "per-label F1 heatmap")


# --- page -------------------------------------------------------------------------------------

def chart_folds(report: dict, width: int = 620) -> str:
    """Cross-validation: each model's score on every fold (dots, labelled by fold) and its mean (bar)."""
    rows, s = report["rows"], report["settings"]
    left, right, top, row_h = 170, 60, 26, 30
    height = top + row_h * len(rows) + 34
    values = [v for r in rows for v in r["per_fold"]]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.08, 0.005)
    lo, hi = lo - pad, hi + pad
    plot_w = width - left - right
    sx = lambda v: left + plot_w * (v - lo) / (hi - lo)
    body = []
    for t in _ticks(lo, hi, 6):
        x = sx(t)
        body.append(f'<line x1="{_n(x)}" y1="{top - 6}" x2="{_n(x)}" y2="{height - 30}" stroke="#eaeef2"/>')
        body.append(_text(x, height - 14, f"{t:g}", anchor="middle", size=11, fill="#57606a"))
    for i, r in enumerate(rows):
        y = top + i * row_h + 12
        colour = PALETTE[i % len(PALETTE)]
        body.append(_text(left - 8, y + 4, _label_text(r["model"]), anchor="end",
                          weight="600" if r["is_baseline"] else "normal"))
        body.append(f'<line x1="{_n(sx(r["mean"]))}" y1="{y - 9}" x2="{_n(sx(r["mean"]))}" y2="{y + 9}" '
                    f'stroke="{colour}" stroke-width="3"><title>{_e(r["model"])}: mean {r["mean"]:.4f}</title></line>')
        for fold, v in enumerate(r["per_fold"]):
            body.append(f'<circle cx="{_n(sx(v))}" cy="{y}" r="4" fill="{colour}" fill-opacity="0.55">'
                        f'<title>{_e(r["model"])}, fold {fold}: {v:.4f}</title></circle>')
    return _svg(width, height, body, f"{s['metric_label']} on each fold")


def _leaderboard_html(report: dict) -> str:
    colours = _colours(report)
    cols = leaderboard_columns(report)
    head = "".join(f'<th class="{"l" if i in (1, 2) else ""}">{_e(c)}</th>' for i, c in enumerate(cols))
    body = []
    for r in report["rows"]:
        cells = leaderboard_cells(report, r)
        tds = []
        for i, c in enumerate(cells):
            if i == 1:
                tds.append(f'<td class="l" title="{_e(r["name"])}"><span class="swatch" '
                           f'style="background:{colours[r["name"]]}"></span>{_e(c)}</td>')
            else:
                tds.append(f'<td class="{"l" if i == 2 else ""}">{_e(c)}</td>')
        body.append(f'<tr class="{"baseline" if r["is_baseline"] else ""}">' + "".join(tds) + "</tr>")
    return f'<table class="board"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _seeds_html(report: dict) -> str:
    lines = seeds_lines(report)
    if not lines:
        return ""
    return ("<h3>Seeds</h3><ul>" + "".join(f"<li>{_e(line)}</li>" for line in lines[:-1]) + "</ul>"
            f'<p class="meta">{_e(lines[-1])}</p>')


def chart_curves(curves: dict, metric_label: str, width: int = 620, height: int = 300) -> str:
    """Each model's metric against its training documents (log scale), 95 % interval bars."""
    points = [p for m in curves["models"] for p in m["points"]]
    left, right, top, bottom = 56, 150, 16, 40
    n_lo, n_hi = min(p["n_train"] for p in points), max(p["n_train"] for p in points)
    y_lo, y_hi = min(p["lo"] for p in points), max(p["hi"] for p in points)
    pad = max((y_hi - y_lo) * 0.08, 0.01)
    y_lo, y_hi = max(0.0, y_lo - pad), y_hi + pad
    lx = lambda n: math.log10(max(n, 1))
    span = (lx(n_hi) - lx(n_lo)) or 1.0
    sx = lambda n: left + (width - left - right) * ((lx(n) - lx(n_lo)) / span if n_hi > n_lo else 0.5)
    sy = lambda v: top + (height - top - bottom) * (1 - (v - y_lo) / ((y_hi - y_lo) or 1.0))
    body = []
    for t in _ticks(y_lo, y_hi):
        body.append(f'<line x1="{left}" y1="{_n(sy(t))}" x2="{width - right}" y2="{_n(sy(t))}" stroke="#eaeef2"/>')
        body.append(_text(left - 6, sy(t) + 4, f"{t:g}", anchor="end", size=11, fill="#57606a"))
    for n in sorted({p["n_train"] for p in points}):
        body.append(_text(sx(n), height - bottom + 16, f"{n:,}", anchor="middle", size=11, fill="#57606a"))
    body.append(_text((left + width - right) / 2, height - 6, "training documents (log scale)", anchor="middle",
                      size=11, fill="#57606a"))
    for i, m in enumerate(curves["models"]):
        colour = PALETTE[i % len(PALETTE)]
        pts = sorted(m["points"], key=lambda p: p["n_train"])
        path = " ".join(f"{_n(sx(p['n_train']))},{_n(sy(p['point']))}" for p in pts)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for p in pts:
            x = sx(p["n_train"])
            body.append(f'<line x1="{_n(x)}" y1="{_n(sy(p["lo"]))}" x2="{_n(x)}" y2="{_n(sy(p["hi"]))}" '
                        f'stroke="{colour}" stroke-width="1.5"/>')
            body.append(f'<circle cx="{_n(x)}" cy="{_n(sy(p["point"]))}" r="3.5" fill="{colour}"/>')
        body.append(_text(width - right + 8, sy(pts[-1]["point"]) + 4, _label_text(m["label"], 20), size=11,
                          fill=colour))
    return _svg(width, height, body, f"learning curves: {metric_label} against training documents")


def _curves_html(report: dict) -> str:
    curves = report.get("curves")
    if not curves:
        return ""
    header, rows = curve_table(curves)
    table = ("<table class=\"agree\"><tr>" + "".join(f'<th class="l">{_e(h)}</th>' for h in header) + "</tr>"
             + "".join("<tr>" + "".join(f'<td>{_e(c)}</td>' for c in row) + "</tr>" for row in rows) + "</table>")
    crossings = "".join(f"<li>{_e(c)}.</li>" for c in curves["crossings"]) or \
        "<li>The curves do not cross within the shares measured.</li>"
    metric = report["settings"]["metric_label"]
    return (f'<h2>Learning curves</h2><div class="card"><h3>{_e(metric)} on test against training documents '
            f'(95% intervals)</h3>{chart_curves(curves, metric)}{table}<ul>{crossings}</ul>'
            f'<p class="note">{_e(curves["note"])}</p></div>')


def _verdict_class(row: dict) -> str:
    d = row["diff"]
    if not d or not d["significant"]:
        return "same"
    return "better" if d["better"] else "worse"


def _headline_html(report: dict) -> str:
    h = report.get("headline")
    return f'<p class="headline">{_e(h["sentence"])}</p>' if h else ""


def _confusion_colour(share: float, diagonal: bool) -> tuple[str, str]:
    """Blue for right answers, red for confusions, deeper with the share of the gold label's documents."""
    lo, hi = (255, 255, 255), ((8, 48, 107) if diagonal else (165, 15, 21))
    rgb = tuple(round(a + (b - a) * share) for a, b in zip(lo, hi))
    return "#{:02x}{:02x}{:02x}".format(*rgb), ("#ffffff" if share > 0.55 else "#1f2328")


def confusion_table(labels: list[str], m: dict) -> str:
    """A confusion matrix as a heat-coloured table; columns are numbered (the rows name them) so 30
    labels fit the page."""
    other = m.get("no_single_prediction")
    head = ('<th class="l">gold \\ predicted</th>'
            + "".join(f'<th title="{_e(label)}">{j + 1}</th>' for j, label in enumerate(labels))
            + ('<th title="documents whose prediction is not exactly one label">none / several</th>' if other else ""))
    body = []
    for i, (label, counts) in enumerate(zip(labels, m["counts"])):
        total = sum(counts) + (other[i] if other else 0)
        cells = []
        for j, n in enumerate(counts):
            fill, ink = _confusion_colour(n / total if total else 0.0, i == j)
            ink = ink if n else "#c8ccd0"  # zeros faint: the confusions stand out
            tip = f"gold {label}, predicted {labels[j]}: {n:,} of {total:,}"
            cells.append(f'<td style="background:{fill};color:{ink}" title="{_e(tip)}">{n:,}</td>')
        if other:
            cells.append(f"<td>{other[i]:,}</td>")
        body.append(f'<tr><th class="l" title="{_e(label)}">{i + 1} {_e(label)}</th>{"".join(cells)}</tr>')
    return f'<table class="confusion"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _agree_table(c: dict, base: str) -> str:
    return ('<table class="agree"><tr><th class="l"></th>'
            f'<th class="l">{_e(base)} right</th><th class="l">{_e(base)} wrong</th></tr>'
            f'<tr><th class="l">{_e(c["label"])} right</th><td>{c["both_right"]:,}</td><td>{c["only_model_right"]:,}</td></tr>'
            f'<tr><th class="l">{_e(c["label"])} wrong</th><td>{c["only_baseline_right"]:,}</td><td>{c["both_wrong"]:,}</td></tr>'
            "</table>")


def _example_html(c: dict, base: str, d: dict) -> str:
    return (f"<li><b>{_e(d['id'])}</b> · gold: {_e(fmt_labels(d['gold']))} · {_e(c['label'])}: "
            f"{_e(fmt_labels(d['model']))} ({_e(fmt_top_scores(d['model_scores']))}) · {_e(base)}: "
            f"{_e(fmt_labels(d['baseline']))} ({_e(fmt_top_scores(d['baseline_scores']))})"
            f"<blockquote>{_e(d['text'])}</blockquote></li>")


def _errors_html(report: dict) -> str:
    """Error analysis: per comparison the 2 x 2 table, McNemar, labels and examples; confusion matrices."""
    errors = report.get("errors")
    if not errors or not (errors["comparisons"] or errors["confusion"]):
        return ""
    base = errors["baseline_label"]
    parts = ['<section class="errors"><h2>Errors against the baseline</h2>', f'<p class="meta">{_e(ERRORS_INTRO)}</p>']
    if not errors["examples"]:
        parts.append('<p class="meta">Example documents left out (--no-examples).</p>')
    for c in errors["comparisons"]:
        card = [f"<h3>{_e(c['label'])} vs {_e(base)}</h3>"]
        card += [f'<p class="meta">{_e(note)}</p>' for note in comparison_notes(c, base)]
        card += [_agree_table(c, base), f"<p>{_e(error_summary(c, base))}</p>"]
        if c.get("label_differences"):
            card.append(f"<p>Labels where their predictions differ most: {_e(label_differences_text(c))}.</p>")
        if "examples" in c:
            for title, docs in example_kinds(c, base):
                items = "".join(_example_html(c, base, d) for d in docs) or "<li>no such document</li>"
                card.append(f'<p><b>{_e(title)}</b></p><ul class="examples">{items}</ul>')
        parts.append(f'<div class="card" style="margin-bottom:16px">{"".join(card)}</div>')
    cm = errors["confusion"]
    if cm:
        parts.append("<h3>Confusion matrices: documents per gold label (rows) and predicted label (columns)</h3>")
        cards = []
        for m in cm["matrices"]:
            note = f'<p class="note">{_e(m["note"])}</p>' if m.get("note") else ""
            title = m["label"] + (" (baseline)" if m["is_baseline"] else "")
            cards.append(f'<div class="card"><h3>{_e(title)}</h3>{confusion_table(cm["labels"], m)}{note}</div>')
        parts.append(f'<div class="cm-pair">{"".join(cards)}</div>')
    parts.append("</section>")
    return "".join(parts)


def render_html(report: dict) -> str:
    """The whole report as one self-contained HTML page (readable at ~1366 px wide)."""
    split, s = report["split"], report["settings"]
    verdicts = [f'<li class="{_verdict_class(r)}">{_e(r["verdict"])}</li>' for r in report["rows"] if r["verdict"]]
    if not verdicts:
        verdicts = ["<li>Only one run: nothing to compare yet.</li>"]
    pl = report["per_label"]
    spread_note = ", the majority floor left out" if len(pl["spread_over"]) < len(pl["runs"]) else ""
    excluded = ""
    if report["excluded"]:
        excluded = ("<p class=\"meta\">Not compared: "
                    + "; ".join(f"{_e(e['name'])} ({_e(e['reason'])})" for e in report["excluded"]) + "</p>")
    leak = leakage_line(report)
    leakage = f"<h2>Near-duplicates of test documents</h2><p><b>Warning:</b> {_e(leak)}</p>" if leak else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>nlpkit report: {_e(split['path'])}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>Report: {_e(split['path'])}</h1>",
        _headline_html(report),
        (f"<p class=\"meta\">{_e(split['task'])}-label · {split['n_test']:,} test documents · "
         f"{split['n_labels']} labels · baseline <b>{_e(report['baseline']['label'])}</b> "
         f"({_e(report['baseline']['name'])}{_e(chosen_by_text(report['baseline']))}) · split "
         f"{_e(split['split_sha256'][:12])}</p>"),
        (f"<p class=\"meta\">{_e(s['metric_label'])} with 95% paired-bootstrap intervals ({s['n_boot']} resamples "
         f"of the test documents); p-values by approximate randomisation ({s['n_perm']} shuffles); "
         f"seed {s['seed']}.</p>"),
        excluded,
        "<h2>Verdicts</h2>",
        f'<ul class="verdicts">{"".join(verdicts)}</ul>',
        leakage,
        "<h2>Leaderboard</h2>",
        _leaderboard_html(report),
        f'<p class="meta">Cost: {_e(cost_note(report))}</p>',
        _seeds_html(report),
        "<h2>Charts</h2>",
        '<div class="grid">',
        f'<div class="card"><h3>{_e(s["metric_label"])} with 95% interval (★ baseline)</h3>{chart_metric_bars(report)}</div>',
        (f'<div class="card"><h3>Difference to {_e(report["baseline"]["label"])} (paired 95% interval)</h3>'
         f'{chart_diffs(report)}<p class="note">Green / red: significant at p &lt; 0.05 with an interval '
         f'excluding 0; grey: no significant difference.</p></div>'),
        (f'<div class="card"><h3>Quality against prediction cost</h3>{chart_cost(report)}'
         f'<p class="note">Right is cheaper (more documents per second); vertical bars are 95% intervals; '
         f'square: baseline.</p></div>'),
        f'<div class="card"><h3>Precision–recall, micro-averaged over all labels</h3>{chart_pr(report)}</div>',
        "</div>",
        "<h2>Per-label F1</h2>",
        (f'<div class="card">{chart_heatmap(report)}<p class="note">The {len(pl["most_frequent"])} most '
         f'frequent labels in training and the {len(pl["most_different"])} labels where runs differ most (◆, '
         f'largest max − min F1 over the models{spread_note}); blank “–”: label neither in the test part nor '
         f'predicted.</p></div>'),
        _errors_html(report),
        _curves_html(report),
        ("<footer>Intervals and tests follow Dror et al. (2018), <i>The Hitchhiker’s Guide to Testing Statistical "
         "Significance in Natural Language Processing</i>: bootstrap over documents for intervals, approximate "
         "randomisation for p-values; all runs are resampled on the same documents (paired). "
         "Cost ratio = baseline docs/s ÷ model docs/s. Generated by nlpkit report.</footer>"),
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"
