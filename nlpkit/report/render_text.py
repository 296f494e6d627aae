"""Text renderings of a report dict: markdown (to paste), JSON (for machines), a rich table (terminal)."""

from __future__ import annotations

import json
import re

from nlpkit.report.compare import format_p, format_signed, metric_label
from nlpkit.report.leakage import leakage_line

# --- cell formatting, shared with the HTML renderer -------------------------------------------

def fmt_value(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def fmt_interval(m: dict | None) -> str:
    if not m:
        return "–"
    return f"{m['point']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]"


def fmt_diff(d: dict | None) -> str:
    if not d:
        return "baseline"
    return f"{format_signed(d['point'])} [{format_signed(d['lo'])}, {format_signed(d['hi'])}]"


def fmt_p(d: dict | None) -> str:
    if not d:
        return "–"
    return format_p(d.get("p_holm", d["p_value"])).removeprefix("p = ").removeprefix("p ")


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 1:
        return f"{s:.2f} s"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def fmt_rate(r: float | None) -> str:
    if r is None:
        return "–"
    if r >= 1e6:
        return f"{r / 1e6:.1f}M"
    if r >= 1e4:
        return f"{r / 1e3:.0f}k"
    if r >= 100:
        return f"{r:,.0f}"
    return f"{r:.3g}"


def fmt_bytes(n: float | None) -> str:
    """Decimal (SI) units, 1 kB = 1,000 bytes, as ``nlpkit finetune`` prints model sizes: 3.4 MB."""
    if n is None:
        return "–"
    n = float(n)
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if round(n, 1) < 1000:  # 999,960 bytes is 1.0 MB, not 1000.0 kB
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} TB"


def leaderboard_columns(report: dict) -> list[str]:
    s = report["settings"]
    name = metric_label(s["metric"])
    money = ["train cost", "cost / 1M docs"] if s.get("prices_per_hour") else []
    return (["#", "model", "kind", f"{name} [95% CI]", "Δ vs baseline [95% CI]", "p"]
            + [metric_label(m) for m in s["secondary"]]
            + ["fit time", "docs/s", "docs/s (1 at a time)", "device", "size"] + money)


def leaderboard_cells(report: dict, row: dict) -> list[str]:
    s = report["settings"]
    model = row["label"] + (" (baseline)" if row["is_baseline"] else "")
    return ([str(row["rank"]), model, row["kind"], fmt_interval(row["metric"]), fmt_diff(row["diff"]),
             fmt_p(row["diff"])]
            + [fmt_value(row["secondary"].get(m)) for m in s["secondary"]]
            + [fmt_seconds(row["fit_seconds"]), fmt_rate(row["predict_docs_per_s"]),
               fmt_rate(row.get("predict_docs_per_s_batch1")), _device_cell(row),
               fmt_bytes(row["model_size_bytes"])]
            + ([fmt_money((row.get("money") or {}).get("train")),
                fmt_money((row.get("money") or {}).get("per_million_docs"))] if s.get("prices_per_hour") else []))


def _device_cell(row: dict) -> str:
    """Where it trained ("–": a run recorded before machines were)."""
    return row.get("device") or "–"


def cost_note(report: dict) -> str:
    """How to read docs/s and cost: where they were measured, and the prices used."""
    s = report["settings"]
    where = (f"docs/s re-measured on this machine ({s['measured_on']}) for every model" if s.get("measure_cost")
             else "docs/s as each run measured it, on the device it trained on")
    prices = s.get("prices_per_hour")
    if prices:
        shown = ", ".join(f"{k.upper()} {v:g}/h" for k, v in prices.items())
        where += f"; costs at {shown} (training: fit time; per 1M documents: at the docs/s shown)"
    return where + "."


def fmt_money(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.2f}" if value >= 0.01 else f"{value:.2g}"


# --- markdown ---------------------------------------------------------------------------------

def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _md_table(header: list[str], rows: list[list[str]], right_from: int = 0) -> list[str]:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: dict) -> str:
    """The leaderboard, the verdicts and the labels where runs differ most, as GitHub markdown."""
    split, s = report["split"], report["settings"]
    lines = [
        f"# Report: {split['path']}",
        "",
        *([f"**{_md_escape(report['headline']['sentence'])}**", ""] if report.get("headline") else []),
        (f"{split['task']}-label, {split['n_test']:,} test documents, {split['n_labels']} labels. "
         f"Headline: {s['metric_label']} with 95% paired-bootstrap intervals ({s['n_boot']} resamples); "
         f"p-values by approximate randomisation ({s['n_perm']} shuffles), Holm-adjusted over the comparisons "
         f"with the baseline; seed {s['seed']}. "
         f"Baseline: {report['baseline']['label']} (`{report['baseline']['name']}`){chosen_by_text(report['baseline'])}."),
        "",
        "## Leaderboard",
        "",
    ]
    lines += _md_table(leaderboard_columns(report), [leaderboard_cells(report, r) for r in report["rows"]],
                       right_from=3)
    lines += ["", f"Cost: {cost_note(report)}"]
    seeds = seeds_lines(report)
    if seeds:
        lines += ["", "## Seeds", ""] + [f"- {line}" for line in seeds[:-1]] + ["", seeds[-1]]
    lines += ["", "## Verdicts", ""]
    lines += [f"- {v}" for v in report["verdicts"]] or ["- Only one run: nothing to compare yet."]
    leak = leakage_line(report)
    if leak:
        lines += ["", "## Near-duplicates of test documents", "", f"**Warning:** {leak}"]
    pl = report["per_label"]
    if pl["most_different"] and len(pl["runs"]) > 1:
        labels = {d["label"]: d for d in pl["labels"]}
        label_of = {r["name"]: r["label"] for r in report["rows"]}
        lines += ["", "## Labels where runs differ most (F1)", ""]
        header = ["label", "train", "test"] + [label_of[n] for n in pl["runs"]] + ["spread"]
        body = []
        for name in pl["most_different"]:
            d = labels[name]
            body.append([name, str(d["train_support"]), str(d["test_support"])]
                        + [fmt_value(d["f1"][n], 2) for n in pl["runs"]] + [fmt_value(d["spread"], 2)])
        lines += _md_table(header, body, right_from=1)
    lines += errors_markdown(report)
    lines += curves_lines(report)
    if report["excluded"]:
        lines += ["", "Not compared: " + "; ".join(f"`{e['name']}` ({e['reason']})" for e in report["excluded"])]
    return "\n".join(lines) + "\n"


def render_json(report: dict) -> str:
    """Everything in the report, as indented JSON (byte-identical for identical inputs and seed)."""
    return json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def leaderboard_table(report: dict):
    """A rich Table of the leaderboard (the baseline row in bold)."""
    from rich.table import Table
    from rich.text import Text

    s = report["settings"]
    title = f"{report['split']['path']}: {s['metric_label']}, baseline {report['baseline']['label']}"
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(leaderboard_columns(report)):
        table.add_column(col, justify="left" if i in (1, 2) else "right", no_wrap=i != 1)
    for row in report["rows"]:
        # Text cells: run names are data, never rich markup
        table.add_row(*(Text(c) for c in leaderboard_cells(report, row)),
                      style="bold" if row["is_baseline"] else None)
    return table


def seeds_lines(report: dict) -> list[str]:
    """One line per model trained with several seeds: each seed's score, their mean and sd (a row's
    interval and its comparison then count seed variance: ``nlpkit.metrics.seed_aware_diff``)."""
    lines = []
    for row in report["rows"]:
        if row.get("seeds"):
            scores = ", ".join(f"{seed}: {value:.4f}" for seed, value in zip(row["seeds"], row["seed_scores"]))
            lines.append(f"{row['label']}: {scores} (mean {row['metric']['point']:.4f}, sd {row['seed_sd']:.4f})")
    if lines:
        lines.append("Rows with several seeds show the mean over seeds; their intervals and comparisons count both "
                     "the test documents and the seeds (Student's t); a row with one seed can only count the documents.")
    return lines


def curve_table(curves: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the learning curves: one row per model, one column per share of train."""
    fractions = sorted({p["fraction"] for m in curves["models"] for p in m["points"]})
    header = ["model"] + [f"{f:g} of train" for f in fractions]
    rows = []
    for m in curves["models"]:
        at = {p["fraction"]: p for p in m["points"]}
        cells = [m["label"]]
        for f in fractions:
            p = at.get(f)
            cells.append("–" if p is None else f"{p['point']:.3f} [{p['lo']:.3f}, {p['hi']:.3f}] ({p['n_train']:,})")
        rows.append(cells)
    return header, rows


def curves_lines(report: dict) -> list[str]:
    """The learning curves as markdown lines (none without curve points)."""
    curves = report.get("curves")
    if not curves:
        return []
    header, rows = curve_table(curves)
    lines = ["", "## Learning curves", "",
             f"{report['settings']['metric_label']} on test with 95 % interval (training documents) at each share of "
             "the train part (`nlpkit curve`).", ""]
    lines += _md_table(header, rows, right_from=1)
    lines += [""] + ([f"- {c}." for c in curves["crossings"]] or ["- The curves do not cross within the shares measured."])
    lines += ["", curves["note"]]
    return lines


def chosen_by_text(baseline: dict) -> str:
    """", chosen by best valid micro-F1 ..." for a baseline picked on valid (reports made before it: "")."""
    how = baseline.get("chosen_by")
    if not how or how.startswith("named"):
        return ""
    value = baseline.get("valid_metric")
    return f", {how}" + (f" ({value:.4f})" if isinstance(value, (int, float)) else "")


# --- error analysis (shared with the HTML renderer) ---------------------------------------------

ERRORS_INTRO = ("A document counts as right when its whole predicted label set is right. Only the documents one "
                "model gets right and the other wrong say which is better; McNemar's exact test asks whether "
                "they lean one way more than chance would (two-sided binomial test, p < 0.05: they do).")


def fmt_labels(labels: list[str]) -> str:
    return ", ".join(labels) if labels else "(none)"


def fmt_top_scores(pairs: list) -> str:
    return ", ".join(f"{label} {score:.2f}" for label, score in pairs)


def error_summary(c: dict, base_label: str) -> str:
    """"McNemar exact p = 0.012: 30 documents only transformer gets right, 12 only tfidf-lr.", with
    several comparisons "p = 0.024 (Holm, 2 comparisons)"."""
    p = format_p(c["mcnemar_p"]) if "mcnemar_p_holm" not in c else \
        f"{format_p(c['mcnemar_p_holm'])} (Holm, {c['comparisons']} comparisons)"
    return (f"McNemar exact {p}: {c['only_model_right']:,} documents only {c['label']} "
            f"gets right, {c['only_baseline_right']:,} only {base_label}.")


def label_differences_text(c: dict) -> str:
    """"label2 (92 documents, transformer right on 49), ..." for a multi-label comparison."""
    return "; ".join(f"{d['label']} ({d['documents']:,} documents, {c['label']} right on {d['model_right']:,})"
                     for d in c.get("label_differences") or [])


def comparison_notes(c: dict, base_label: str) -> list[str]:
    """Which run stands for a model with several seeds."""
    notes = []
    if c.get("note"):
        notes.append(f"{c['label']}: {c['note']}.")
    if c.get("baseline_note"):
        notes.append(f"{base_label}: {c['baseline_note']}.")
    return notes


def example_kinds(c: dict, base_label: str) -> list[tuple[str, list[dict]]]:
    ex = c.get("examples") or {}
    return [(f"{c['label']} right, {base_label} wrong", ex.get("model_right") or []),
            (f"{base_label} right, {c['label']} wrong", ex.get("baseline_right") or [])]


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _md_text(text: str) -> str:
    """Document text shown as it is: markdown and HTML characters escaped."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def errors_markdown(report: dict) -> list[str]:
    """The error-analysis section: per comparison the 2 x 2 table, McNemar, labels, examples; then
    the confusion matrices (single-label, at most 30 labels)."""
    errors = report.get("errors")
    if not errors or not (errors["comparisons"] or errors["confusion"]):
        return []
    base = errors["baseline_label"]
    lines = ["", "## Errors against the baseline", "", ERRORS_INTRO]
    if not errors["examples"]:
        lines += ["", "Example documents left out (--no-examples)."]
    for c in errors["comparisons"]:
        lines += ["", f"### {_md_escape(c['label'])} vs {_md_escape(base)}", ""]
        notes = comparison_notes(c, base)
        if notes:
            lines += [" ".join(notes), ""]
        lines += _md_table(["", f"{base} right", f"{base} wrong"], [
            [f"{c['label']} right", f"{c['both_right']:,}", f"{c['only_model_right']:,}"],
            [f"{c['label']} wrong", f"{c['only_baseline_right']:,}", f"{c['both_wrong']:,}"]], right_from=1)
        lines += ["", error_summary(c, base)]
        if c.get("label_differences"):
            lines += ["", "Labels where their predictions differ most: " + _md_escape(label_differences_text(c)) + "."]
        if "examples" in c:
            for title, docs in example_kinds(c, base):
                lines += ["", f"{_md_escape(title)}:" + ("" if docs else " no such document."), ""]
                for d in docs:
                    lines.append(f"- `{d['id']}` gold: {_md_text(fmt_labels(d['gold']))}; {_md_escape(c['label'])}: "
                                 f"{_md_text(fmt_labels(d['model']))} ({_md_text(fmt_top_scores(d['model_scores']))}); "
                                 f"{_md_escape(base)}: {_md_text(fmt_labels(d['baseline']))} "
                                 f"({_md_text(fmt_top_scores(d['baseline_scores']))})")
                    lines.append(f"  > {_md_text(d['text'])}")
    cm = errors["confusion"]
    if cm:
        lines += ["", "### Confusion matrices", "", "Documents per gold label (rows) and predicted label (columns)."]
        for m in cm["matrices"]:
            title = m["label"] + (" (baseline)" if m["is_baseline"] else "")
            lines += ["", f"#### {_md_escape(title)}", ""]
            if m.get("note"):
                lines += [f"{m['note'][0].upper()}{m['note'][1:]}.", ""]
            other = m.get("no_single_prediction")
            header = ["gold \\ predicted"] + cm["labels"] + (["no single label"] if other else [])
            body = [[label] + [f"{n:,}" for n in counts] + ([f"{other[i]:,}"] if other else [])
                    for i, (label, counts) in enumerate(zip(cm["labels"], m["counts"]))]
            lines += _md_table(header, body, right_from=1)
    return lines
