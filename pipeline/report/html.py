"""`capcache report RUN`: one self-contained HTML page per evaluated split.

Scores, how varied the captions are (distinct captions, vocabulary, Div-1/2, novel share), the
run's training plots and a gallery of images with generated caption, references and
per-image CIDEr (best first, then worst) are all inlined (images as data: URIs), so the file can be
mailed, attached to a Kaggle output or opened offline with nothing broken. A tiny inline script
counts the images that decoded and marks the page, which is what the browser test reads.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image

from pipeline.data.manifest import Manifest
from pipeline.evaluation.compare import decoding_label, read_eval_report
from pipeline.evaluation.table import COLUMNS, DIVERSITY_COLUMNS, diversity_cells, format_cell
from pipeline.io import atomic_write_text, read_json
from pipeline.runs.folder import RunFolder

THUMBNAIL = 320  # pixels on the longer side
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}.plots img{max-width:48%;margin:4px}.plots img:first-child{max-width:100%}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:16px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px}.card img{width:100%}
.gen{font-weight:600}.refs{color:#555;font-size:90%;margin:4px 0 0 1em;padding:0}.score{float:right;color:#06c}
.missing{background:#eee;padding:3em 0;text-align:center;color:#888}
"""
CHECK_IMAGES = """
window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.dataset.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesBroken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
});
"""


def write_report(run_dir: str | Path, split: str = "test", out: str | Path | None = None, gallery: int = 24) -> Path:
    """Write the page (default RUN/report_<split>.html) and return its path; ``gallery`` images, half best."""
    run = RunFolder(Path(run_dir))
    report = read_eval_report(run, split)
    config = read_json(run.config)  # the run's own record: a report needs no trainer
    cache = read_json(run.cache_info)
    manifest = manifest_if_present(config["data"]["manifest"])
    ranked = sorted(report["captions"], key=lambda c: c.get("scores", {}).get("CIDEr", 0.0), reverse=True)
    shown = ranked if len(ranked) <= gallery else ranked[: gallery // 2] + ranked[-(gallery - gallery // 2):]
    body = [
        f"<h1>{esc(run.root.name)}: {esc(split)} split</h1>",
        f"<p>decoder <b>{esc(config['decoder'])}</b> on <b>{esc(cache['spec']['encoder']['encoder'])}</b> features "
        f"({esc(cache['spec']['encoder']['weights'])}); {report['n_images']} images; decoding "
        f"{esc(decoding_label(report.get('decoding', {})))}; checkpoint {esc(report.get('checkpoint', ''))} "
        f"(epoch {report.get('epoch')})</p>",
        _table(COLUMNS, report["scores"]),
        *(f"<p>{esc(m)} unavailable: {esc(why)}</p>" for m, why in report.get("unavailable", {}).items()),
        _captions_section(report),
        "<h2>Training</h2><div class='plots'>" + "".join(
            f"<img alt='{esc(p.stem)}' src='{png_uri(p)}'>" for p in run_plots(run)) + "</div>",
        f"<h2>Gallery: the {min(gallery // 2, len(shown))} best and worst by CIDEr</h2><div class='gallery'>",
        *(_card(item, manifest) for item in shown),
        "</div>",
    ]
    target = Path(out) if out else run.root / f"report_{split}.html"
    return atomic_write_text(target, page(f"{run.root.name} report", body))


def manifest_if_present(path: str) -> Manifest | None:
    """The run's manifest for its images, or None when it has moved since (the page says so per image)."""
    return Manifest.load(path) if Path(path).is_file() else None


def page(title: str, body: list[str]) -> str:
    """The self-contained page around ``body``: style, and the script the browser test reads."""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{STYLE}</style><script>{CHECK_IMAGES}</script></head><body>{''.join(body)}</body></html>\n")


def _table(columns: tuple[str, ...], values: dict) -> str:
    """One header row and one row of values: floats to 3 decimals, counts as they are, missing as n/a."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    cells = "".join(f"<td>{format_cell(values.get(c))}</td>" for c in columns)
    return f"<table><tr>{head}</tr><tr>{cells}</tr></table>"


def _captions_section(report: dict) -> str:
    figures = report.get("diversity")
    if figures is None:
        return "<h2>Captions</h2><p>no diversity figures in this evaluation; run `capcache eval` again</p>"
    return (f"<h2>Captions</h2><p>{figures['distinct']} distinct captions of {figures['captions']}, "
            f"{figures['vocabulary']} different words; novel: not a training caption verbatim; Div-1 / Div-2: "
            f"distinct unigrams / bigrams per generated word</p>{_table(DIVERSITY_COLUMNS, diversity_cells(figures))}")


def _card(item: dict, manifest: Manifest | None) -> str:
    cider = item.get("scores", {}).get("CIDEr")
    refs = "".join(f"<li>{esc(r)}</li>" for r in item["references"])
    return (f"<div class='card'>{thumbnail(item, manifest)}<span class='score'>"
            f"{'' if cider is None else f'CIDEr {cider:.2f}'}</span><div class='gen'>{esc(item['caption'])}</div>"
            f"<ol class='refs'>{refs}</ol><small>{esc(item['file'])}</small></div>")


def thumbnail(item: dict, manifest: Manifest | None) -> str:
    """The image of an eval record (its "file") inlined as a JPEG data URI, or a placeholder."""
    path = Path(manifest.image_root) / item["file"] if manifest else None
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((THUMBNAIL, THUMBNAIL))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=85)
    except Exception:  # images moved or deleted since training: say so instead of a broken picture
        return "<div class='missing'>image not available</div>"
    return f"<img alt='{esc(item['file'])}' src='data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}'>"


def run_plots(run: RunFolder) -> list[Path]:
    """The overview (every curve, val metrics included, once); a single curve only if it is missing."""
    found = {p.stem: p for p in run.plots.glob("*.png")} if run.plots.is_dir() else {}
    return next(([found[name]] for name in ("overview", "val_CIDEr", "val_loss") if name in found), [])


def png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)
