"""`capcache report` for a tagging run: one self-contained HTML page per evaluated split.

Seed 004's table for every indicator function (the run's own row marked), the training plots, and
a gallery of images with their predicted labels against the true ones (correct, wrong, missed),
the best and the worst images by per-image F1. Built from eval/<split>.json like the captioning page.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.manifest import Manifest
from pipeline.errors import CapcacheError
from pipeline.evaluation.table import format_cell
from pipeline.evaluation.tagging.evaluate import TAGGING_COLUMNS
from pipeline.io import atomic_write_text, read_json
from pipeline.report.html import esc, manifest_if_present, page, png_uri, run_plots, thumbnail
from pipeline.runs.folder import RunFolder

LABEL_STYLE = ("<style>.ok{color:#070;font-weight:600}.wrong{color:#b00}.missed{color:#888;text-decoration:"
               "line-through}.labels span{margin-right:.5em}</style>")


def write_tagging_report(run_dir: str | Path, split: str = "test", out: str | Path | None = None,
                         gallery: int = 24) -> Path:
    run = RunFolder(Path(run_dir))
    path = run.eval_file(split)
    if not path.is_file():
        raise CapcacheError(f"{run.root} has no {split!r} evaluation; run `capcache eval {run.root} --split {split}`")
    report = read_json(path)
    config = read_json(run.config)
    cache = read_json(run.cache_info)
    manifest = manifest_if_present(config["data"]["manifest"])
    ranked = sorted(report["images"], key=_f1, reverse=True)
    shown = ranked if len(ranked) <= gallery else ranked[: gallery // 2] + ranked[-(gallery - gallery // 2):]
    model = ", ".join(f"{k} {v}" for k, v in config["model"].items() if k in ("visual", "tags", "combine", "quantity") and v)
    body = [
        LABEL_STYLE,
        f"<h1>{esc(run.root.name)}: {esc(split)} split</h1>",
        f"<p>tagging heads <b>{esc(model)}</b> on <b>{esc(cache['spec']['encoder']['encoder'])}</b> features; "
        f"{report['n_images']} images; threshold alpha {report['alpha']:.2f} chosen on {esc(report['alpha_chosen_on'])}; "
        f"this run's row: <b>{esc(report['headline'])}</b></p>",
        _rows_table(report["rows"], report["headline"]),
        "<h2>Training</h2><div class='plots'>" + "".join(
            f"<img alt='{esc(p.stem)}' src='{png_uri(p)}'>" for p in run_plots(run)) + "</div>",
        f"<h2>Gallery: the {min(gallery // 2, len(shown))} best and worst by per-image F1</h2>"
        "<p><span class='ok'>correct</span> <span class='wrong'>predicted, wrong</span> "
        "<span class='missed'>true, missed</span></p><div class='gallery'>",
        *(_card(item, manifest) for item in shown),
        "</div>",
    ]
    target = Path(out) if out else run.root / f"report_{split}.html"
    return atomic_write_text(target, page(f"{run.root.name} report", body))


def _rows_table(rows: dict[str, dict], headline: str) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in ("indicator", *TAGGING_COLUMNS))
    body = "".join(f"<tr><td>{'<b>' + esc(name) + '</b>' if name == headline else esc(name)}</td>"
                   + "".join(f"<td>{format_cell(values.get(c))}</td>" for c in TAGGING_COLUMNS) + "</tr>"
                   for name, values in rows.items())
    return f"<table><tr>{head}</tr>{body}</table>"


def _card(item: dict, manifest: Manifest | None) -> str:
    true, predicted = set(item["labels"]), item["predicted"]
    spans = [f"<span class='{'ok' if p in true else 'wrong'}'>{esc(p)}</span>" for p in predicted]
    spans += [f"<span class='missed'>{esc(t)}</span>" for t in item["labels"] if t not in predicted]
    return (f"<div class='card'>{thumbnail(item, manifest)}<span class='score'>F1 {_f1(item):.2f}</span>"
            f"<div class='labels'>{''.join(spans)}</div><small>{esc(item['file'])}</small></div>")


def _f1(item: dict) -> float:
    true, predicted = set(item["labels"]), set(item["predicted"])
    hits = len(true & predicted)
    return 2 * hits / (len(true) + len(predicted)) if true or predicted else 1.0
