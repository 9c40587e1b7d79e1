"""capcache command line: parse options, call the library, print. Nothing here that Python users
can't call directly (see pipeline/*)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer

from pipeline.errors import CapcacheError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="capcache: extract frozen-backbone features once, train caption decoders in minutes.")


def friendly_errors(fn: Callable) -> Callable:
    """Input problems end with one 'error: ...' line and exit code 1, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CapcacheError as e:
            typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.secho("interrupted; run the same command again to resume", err=True)
            raise typer.Exit(130) from None
    return wrapper


@app.command()
@friendly_errors
def demo(out: Path = typer.Option(Path("runs/demo"), help="Folder for data, cache and run."),
         device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
         workers: int = typer.Option(2, help="Image decoding processes during extraction."),
         train_images: int = typer.Option(2000, help="Synthetic training images."),
         eval_images: int = typer.Option(200, help="Synthetic images in each of val and test."),
         seed: int = typer.Option(0, help="Seed of the synthetic set."),
         preset: str = typer.Option("demo", help="demo (attention LSTM) | demo-prefix-lm (a small GPT-2 trained from scratch)."),
         set_: Optional[List[str]] = typer.Option(None, "--set", help="Training override KEY=VALUE, e.g. epochs=3.")):
    """Generate the offline demo set, extract, train and evaluate, end to end."""
    from pipeline.data.synthetic import SyntheticConfig
    from pipeline.demo import run_demo
    from pipeline.evaluation.table import format_table

    data = SyntheticConfig(n_train=train_images, n_val=eval_images, n_test=eval_images, seed=seed)
    result = run_demo(out, data=data, overrides=set_ or [], device=device, workers=workers, preset=preset)
    typer.echo(result.extraction.summary())
    typer.echo(format_table({f"demo (tiny-cnn + {result.decoder})": result.evaluation["scores"]}))
    for metric, reason in result.evaluation["unavailable"].items():
        typer.echo(f"{metric} unavailable: {reason}")
    typer.echo(f"run folder: {result.run_dir}")


@app.command("import")
@friendly_errors
def import_(fmt: str = typer.Argument(..., metavar="FORMAT", help="karpathy | flickr8k | kaggle | flickr30k-csv | coco | nus-wide | "
                                                                  "labels-csv | conceptual-captions | img2dataset"),
            paths: List[Path] = typer.Argument(..., metavar="PATH...", help="Caption file (dataset_*.json, Flickr8k.token.txt, captions.txt, results.csv, captions_*.json), "
                                                                            "NUS-WIDE's folder, or a labels CSV (image,labels[,tags][,split]); conceptual-captions: "
                                                                            "a TSV; img2dataset: output folders or shard .tar files."),
            images: Optional[Path] = typer.Option(None, help="Folder holding the image files (not for conceptual-captions, img2dataset)."),
            out: str = typer.Option(..., help="Manifest name (saved as data_manifests/NAME.json, NAME.jsonl for conceptual-captions "
                                              "and img2dataset) or a .json / .jsonl path."),
            split: Optional[str] = typer.Option(None, help="COCO: the split of this file (default: from its name); "
                                                           "conceptual-captions, img2dataset: the split of PATH (default train)."),
            val: Optional[List[Path]] = typer.Option(None, help="conceptual-captions, img2dataset: an input of the val split (repeatable)."),
            test: Optional[List[Path]] = typer.Option(None, help="conceptual-captions, img2dataset: an input of the test split (repeatable)."),
            split_seed: int = typer.Option(0, help="Seed for a random split when the format has none."),
            karpathy_split: Optional[Path] = typer.Option(None, help="flickr30k-csv: dataset_flickr30k.json, whose split to apply."),
            no_check_files: bool = typer.Option(False, "--no-check-files", help="Don't check image files exist.")):
    """Translate a caption dataset into a capcache manifest."""
    from pipeline.data.importers import import_dataset, manifest_path

    target = manifest_path(out, fmt)
    result = import_dataset(fmt, paths, images, name=target.stem, out=target, split_seed=split_seed,
                            check_files=not no_check_files, split=split, val=val or (), test=test or (),
                            karpathy_split=karpathy_split)
    typer.echo(result.summary())
    typer.echo(f"manifest: {target}")


@app.command()
@friendly_errors
def extract(manifest: Path = typer.Argument(..., help="Manifest JSON."),
            encoder: str = typer.Option(..., help="Encoder name (see `capcache encoders`)."),
            weights: Optional[str] = typer.Option(None, help="Published name, local file, or random[:SEED]."),
            grid: Optional[int] = typer.Option(None, min=1, help="Adaptive-pool the feature map to GRID x GRID "
                                               "(fasterrcnn_regions: the number of boxes)."),
            cache_dir: Path = typer.Option(Path("cache"), help="Where cache files live."),
            batch_size: Optional[int] = typer.Option(None, min=1, help="Images per forward pass (default: the "
                                                     "cache's own when continuing one, else 8 on CPU, 32 on a GPU)."),
            workers: int = typer.Option(2, min=0),
            device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
            dtype: str = typer.Option("float16", help="float16 | float32"),
            part_rows: Optional[int] = typer.Option(None, min=1, help="Write the cache in part files of this many "
                                                    "rows (under torchrun always: default up to 10000, 4+ parts a process; each rank writes whole parts)."),
            plan: bool = typer.Option(False, help="Only say what would be written: size, free space, parts per process."),
            processes: int = typer.Option(1, min=1, help="With --plan: the torchrun job's total number of processes."),
            views: int = typer.Option(0, min=0, help="Also cache this many augmented views of every image (random "
                                      "resized crop + flips, fixed per image and view), for `--set data.views=K`."),
            view_scale: float = typer.Option(0.6, help="Views: the crop's smallest share of the image's area."),
            view_hflip: float = typer.Option(0.5, help="Views: probability of a left-right mirror."),
            view_vflip: float = typer.Option(0.0, help="Views: probability of an upside-down flip (seed 002: 0.5)."),
            view_seed: int = typer.Option(0, help="Views: seed of their dice (another seed, other views).")):
    """Run a frozen encoder over every image once and store the features (resumable; in parts under torchrun)."""
    from pipeline.augmentation import Augmentation
    from pipeline.data.manifest import Manifest
    from pipeline.extract import extract as run_extract

    if plan:
        from pipeline.extract.plan import plan_extraction

        typer.echo(plan_extraction(Manifest.load(manifest), encoder, weights, grid, cache_dir, dtype, processes,
                                   part_rows, views).summary())
        return
    augmentation = Augmentation(scale=(view_scale, 1.0), hflip=view_hflip, vflip=view_vflip, seed=view_seed)
    result = run_extract(Manifest.load(manifest), encoder, weights, grid, cache_dir, batch_size, workers, device, dtype,
                         rows_per_part=part_rows, views=views, augmentation=augmentation)
    if not result.main_process:  # other torchrun ranks: rank 0 reports for the job
        return
    typer.echo(result.summary())
    typer.echo(str(result.path))  # last line: the cache path, for scripts


cache_app = typer.Typer(no_args_is_help=True, help="List, describe and verify feature caches.")
app.add_typer(cache_app, name="cache")


@cache_app.command("ls")
@friendly_errors
def cache_ls(cache_dir: Path = typer.Option(Path("cache"), help="Folder holding cache files.")):
    """Every cache in a folder: encoder, image count, completeness, size."""
    from pipeline.cache.inspect import format_listing, list_caches

    caches, problems = list_caches(cache_dir)
    typer.echo(format_listing(caches))
    for line in problems:  # unreadable, being written, leftovers of killed runs
        typer.echo(line)


@cache_app.command("info")
@friendly_errors
def cache_info(path: Path = typer.Argument(..., help="Cache file (.h5).")):
    """Everything a cache was built from: key, encoder, weights, preprocessing, versions."""
    from pipeline.cache.inspect import cache_info as describe

    typer.echo(describe(path).summary())


@cache_app.command("verify")
@friendly_errors
def cache_verify(path: Path = typer.Argument(..., help="Cache file (.h5)."),
                 deep: bool = typer.Option(False, help="Also hash every image file again and name those that changed."),
                 images: Optional[Path] = typer.Option(None, help="With --deep: the image folder, if it moved."),
                 repair: bool = typer.Option(False, help="Mark damaged and changed rows pending for extract to redo.")):
    """Check every row is written, finite and matches its checksum; exit code 1 when not."""
    from pipeline.cache.inspect import verify_cache

    result = verify_cache(path, deep=deep, images=images, repair=repair)
    typer.echo(result.summary())
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def encoders():
    """List the registered encoders and their default weights."""
    from pipeline.encoders import available_encoders

    for name, weights in available_encoders().items():
        typer.echo(f"{name}\t{weights}")


@app.command()
@friendly_errors
def train(out: Path = typer.Option(..., help="Run folder to create (or continue with --resume)."),
          manifest: Optional[Path] = typer.Option(None), cache: Optional[Path] = typer.Option(None),
          preset: Optional[str] = typer.Option(None, help=(
              "seed architectures: resnet-lstm-baseline | resnet-lstm-att | resnet-transformer | "
              "clip-transformer | clipcap-mlp | clipcap-transformer | seed003-gpt2; on 2 CPU cores with "
              "efficientnet_lite0: cpu-lstm-att | cpu-transformer | cpu-prefix-lm; demo | demo-prefix-lm")),
          config: Optional[Path] = typer.Option(None, help="JSON or TOML file with config fields."),
          set_: Optional[List[str]] = typer.Option(None, "--set", help="Override KEY=VALUE, e.g. optim.lr=1e-3."),
          resume: bool = typer.Option(False, help="Continue the run in --out where it stopped."),
          task: str = typer.Option("captioning", help="captioning | tagging (presets vcnn-top3, vcnn-lqp, "
                                                      "vcnn-mlp-lp-top3, composite-topk)")):
    """Train a caption decoder (or with --task tagging, seed 004's tagging heads) from a feature cache."""
    from pipeline.config import load_file

    overrides = [f"data.manifest={manifest.resolve()}"] if manifest else []
    overrides += [f"data.cache={cache.resolve()}"] if cache else []
    if resume:
        from pipeline.runs.tagging import run_task
        task = run_task(out)
    file_data = load_file(config) if config else None
    if task == "tagging":
        from pipeline.training.tagging.config import resolve_tagging_config
        from pipeline.training.tagging.loop import train_tagger

        cfg = None if resume else resolve_tagging_config(preset, file_data, overrides + (set_ or []))
        _report_training(train_tagger(cfg, out, resume=resume))
        return
    if task != "captioning":
        raise CapcacheError(f"unknown task {task!r}; use captioning or tagging")
    from pipeline.training.config import resolve_config
    from pipeline.training.loop import train as run_train

    cfg = None if resume else resolve_config(preset, file_data, overrides + (set_ or []))
    _report_training(run_train(cfg, out, resume=resume))


@app.command()
@friendly_errors
def finetune(run: Path = typer.Argument(..., help="Trained run folder to start from (its best checkpoint)."),
             out: Path = typer.Option(..., help="New run folder (continue it with `capcache train --resume --out`)."),
             scst: bool = typer.Option(False, "--scst", help="Self-critical training: optimise CIDEr-D of sampled captions."),
             set_: Optional[List[str]] = typer.Option(None, "--set", help="Override KEY=VALUE, e.g. scst.samples=5.")):
    """Continue training from a run's best weights in a new run folder (e.g. SCST after cross-entropy)."""
    from pipeline.io import read_json
    from pipeline.training.config import finetune_config
    from pipeline.training.loop import train as run_train
    from pipeline.runs.folder import RunFolder

    source = RunFolder(run)
    if not source.config.is_file():
        raise CapcacheError(f"{run} is not a capcache run folder (no config.json); train it first")
    _report_training(run_train(finetune_config(read_json(source.config), str(run.resolve()), scst, set_ or []), out))


def _report_training(result) -> None:
    if not result.main_process:  # other torchrun ranks: rank 0 reports for the job
        return
    best = f"{result.best_metric:.4f} (epoch {result.best_epoch})" if result.best_metric is not None else "n/a"
    typer.echo(f"trained {result.epochs} epochs, {result.steps} steps in {result.seconds:.0f} s; best: {best}"
               + ("; stopped early" if result.stopped_early else ""))
    typer.echo(f"run folder: {result.run_dir}")


def _decoding(beam: int, max_len: Optional[int], min_len: int, length_penalty: float, no_repeat_ngram: int,
              allow_unk: bool, rerank: int = 0):
    from pipeline.decoding import DecodingConfig

    return DecodingConfig.from_beam(beam, max_len=max_len, min_len=min_len, length_penalty=length_penalty,
                                    no_repeat_ngram=no_repeat_ngram, allow_unk=allow_unk, rerank_neighbours=rerank)


BEAM = typer.Option(1, help="Beam size; 1 = greedy.")
MAX_LEN = typer.Option(None, help="Decoding steps, <end> included: at most this many words, one fewer when the "
                                  "caption ends (default: the run's max_decode_len).")
MIN_LEN = typer.Option(1, help="No <end> before this many words; must be below --max-len.")
ALLOW_UNK = typer.Option(False, "--allow-unk", help="Let captions contain <unk> (never emitted by default).")
LENGTH_PENALTY = typer.Option(0.0, help="Beam: GNMT length penalty alpha (0 = plain log-prob).")
NO_REPEAT = typer.Option(0, help="Beam: never repeat an n-gram of this size (0 = off).")


@app.command("eval")
@friendly_errors
def eval_(run: Path = typer.Argument(..., help="Run folder."), split: str = typer.Option("test"),
          checkpoint: str = typer.Option("best", help="best | last"), batch_size: int = typer.Option(64),
          beam: int = BEAM, max_len: Optional[int] = MAX_LEN, min_len: int = MIN_LEN,
          length_penalty: float = LENGTH_PENALTY, no_repeat_ngram: int = NO_REPEAT, allow_unk: bool = ALLOW_UNK,
          rerank: int = typer.Option(0, help="Beam: keep the hypothesis closest (CIDEr-D) to the captions of this "
                                             "many nearest train photos (consensus reranking; 0 = off)."),
          device: str = typer.Option("auto"), spice: bool = typer.Option(False, help="Also SPICE (needs its download).")):
    """Decode a split with a trained run, score it with pycocoevalcap and measure how varied the captions are
    (a tagging run: seed 004's table for each indicator function)."""
    from pipeline.evaluation.evaluate_run import evaluate_run
    from pipeline.evaluation.table import DIVERSITY_COLUMNS, diversity_cells, format_table
    from pipeline.runs.tagging import run_task

    if run_task(run) == "tagging":
        _eval_tagging(run, split, checkpoint, device)
        return

    decoding = _decoding(beam, max_len, min_len, length_penalty, no_repeat_ngram, allow_unk, rerank)
    report = evaluate_run(run, split, checkpoint, batch_size, device=device, spice=spice, decoding=decoding,
                          progress=True)
    typer.echo(format_table({run.name: report["scores"]}))
    typer.echo(format_table({run.name: diversity_cells(report.get("diversity"))}, DIVERSITY_COLUMNS))
    for metric, reason in report["unavailable"].items():
        typer.echo(f"{metric} unavailable: {reason}")
    typer.echo(f"written: {run / 'eval' / (split + '.json')}")


def _eval_tagging(run: Path, split: str, checkpoint: str, device: str) -> None:
    from pipeline.evaluation.table import format_table
    from pipeline.evaluation.tagging.evaluate import TAGGING_COLUMNS, evaluate_tagging_run

    report = evaluate_tagging_run(run, split, checkpoint, device)
    typer.echo(format_table(report["rows"], TAGGING_COLUMNS))
    typer.echo(f"{report['n_images']} images ({report['left_out_unlabelled']} without labels left out); threshold "
               f"alpha {report['alpha']:.2f} chosen on {report['alpha_chosen_on']}; this run's row: {report['headline']}")
    typer.echo(f"written: {run / 'eval' / (split + '.json')}")


@app.command()
@friendly_errors
def tag(run: Path = typer.Argument(..., help="Tagging run folder."),
        images: List[Path] = typer.Argument(..., help="Image files and/or folders."),
        tags: Optional[Path] = typer.Option(None, help="Runs with a tag modality: JSON {file: [noisy tags]}."),
        checkpoint: str = typer.Option("best", help="best | last"),
        weights: Optional[str] = typer.Option(None, help="Only for runs whose encoder used a local weights file."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write labels and probabilities here."),
        batch_size: int = typer.Option(16), workers: int = typer.Option(2, help="Image-decoding processes."),
        device: str = typer.Option("auto")):
    """Tag new images with a tagging run (its own encoder); prints file<TAB>label, label, ..."""
    from pipeline.inference.tag_images import tag_images
    from pipeline.io import atomic_write_json, read_json

    given = {str(Path(k)): v for k, v in read_json(tags).items()} if tags else None
    result = tag_images(run, images, checkpoint, weights, given, batch_size, device, workers, progress=True)
    for item in result.images:
        typer.echo(f"{item.path}\t{', '.join(item.labels)}")
    for path, why in result.skipped.items():
        typer.secho(f"skipped {path}: {why}", err=True)
    if json_out:
        atomic_write_json(json_out, {"run": str(run), "indicator": result.indicator, "skipped": result.skipped,
                                     "images": [{"file": str(i.path), "labels": i.labels,
                                                 "probabilities": i.probabilities} for i in result.images]})


labels_app = typer.Typer(no_args_is_help=True, help="Add multi-label tagging data to a manifest.")
app.add_typer(labels_app, name="labels")


@labels_app.command("from-captions")
@friendly_errors
def labels_from_captions(manifest: Path = typer.Argument(..., help="Manifest JSON with captions."),
                         top: int = typer.Option(80, help="Concept classes: the words labelling most train images."),
                         min_captions: int = typer.Option(2, help="A word labels an image when this many captions use it."),
                         nouns: Optional[Path] = typer.Option(None, help="Nouns list (one per line, e.g. WordNet "
                                                                         "index.noun): only nouns become classes."),
                         tags_from_caption: Optional[int] = typer.Option(
                             None, help="Hold out each image's caption N (0-based) as its noisy tags; labels come "
                                        "from the other captions."),
                         tag_vocab: int = typer.Option(1000, help="Tags kept: the most frequent in train."),
                         out: Optional[Path] = typer.Option(None, help="Write a new manifest here (default: in place).")):
    """Derive visual-concept labels from reference captions (Fang et al. 2015), so a caption set becomes a
    multi-label tagging set."""
    from pipeline.data.concepts import concepts_from_captions, load_nouns
    from pipeline.data.manifest import Manifest

    m = Manifest.load(manifest)
    m.labels = concepts_from_captions(m, top, min_captions, load_nouns(nouns) if nouns else None,
                                      tags_from_caption=tags_from_caption, tag_vocab=tag_vocab)
    counts = [len(e.labels) for e in m.labels.images.values()]
    target = out or manifest
    m.save(target)
    typer.echo(f"{len(m.labels.classes)} classes: {', '.join(m.labels.classes[:12])}, ...")
    typer.echo(f"labels per image: mean {sum(counts) / max(len(counts), 1):.2f}, max {max(counts, default=0)}; "
               f"{sum(c == 0 for c in counts)} images without any" +
               (f"; {len(m.labels.tags)} tags from caption {tags_from_caption}" if m.labels.tags else ""))
    typer.echo(f"manifest: {target}")


@app.command()
@friendly_errors
def caption(run: Path = typer.Argument(..., help="Run folder."),
            images: List[Path] = typer.Argument(..., help="Image files and/or folders."),
            beam: int = BEAM, max_len: Optional[int] = MAX_LEN, min_len: int = MIN_LEN,
            length_penalty: float = LENGTH_PENALTY, no_repeat_ngram: int = NO_REPEAT, allow_unk: bool = ALLOW_UNK,
            checkpoint: str = typer.Option("best", help="best | last"),
            weights: Optional[str] = typer.Option(None, help="Only for runs whose encoder used a local weights file."),
            json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the captions as JSON here."),
            attention: Optional[Path] = typer.Option(None, help="Folder for word-by-word attention maps (PNG)."),
            batch_size: int = typer.Option(16), workers: int = typer.Option(2, help="Image-decoding processes."),
            device: str = typer.Option("auto")):
    """Caption new images with a trained run (its own encoder and preprocessing); prints file<TAB>caption."""
    from pipeline.inference.caption_images import caption_images
    from pipeline.io import atomic_write_json

    decoding = _decoding(beam, max_len, min_len, length_penalty, no_repeat_ngram, allow_unk)
    result = caption_images(run, images, decoding, checkpoint, weights, batch_size, device, attention is not None,
                            workers, progress=True)
    for item in result.images:
        typer.echo(f"{item.path}\t{item.caption}")
    for path, why in result.skipped.items():
        typer.secho(f"skipped {path}: {why}", err=True)
    if attention is not None:
        from pipeline.report.attention import save_attention_maps

        typer.echo(f"attention maps: {len(save_attention_maps(result, attention))} in {attention}", err=True)
    if json_out:
        atomic_write_json(json_out, {"run": str(run), "decoding": decoding.describe(), "skipped": result.skipped,
                                     "captions": [{"file": str(i.path), "caption": i.caption, "log_prob": i.log_prob}
                                                  for i in result.images]})


@app.command()
@friendly_errors
def compare(runs: List[Path] = typer.Argument(..., help="Evaluated run folders."), split: str = typer.Option("test"),
            markdown: Optional[Path] = typer.Option(None, help="Also write the table as Markdown to this file.")):
    """Side-by-side table of evaluated runs: scores, diversity, parameters, training time, cache used
    (tagging runs: seed 004's table, each run's own indicator row)."""
    from pipeline.evaluation.compare import compare_runs, format_comparison
    from pipeline.evaluation.tagging.compare import compare_tagging_runs, format_tagging_comparison
    from pipeline.io import atomic_write_text
    from pipeline.runs.tagging import run_task

    tasks = {run_task(r) for r in runs}
    if len(tasks) > 1:
        raise CapcacheError("compare takes captioning runs or tagging runs, not both; compare each kind apart")
    if tasks == {"tagging"}:
        rows = compare_tagging_runs(runs, split)
        table = functools.partial(format_tagging_comparison, rows)
    else:
        table = functools.partial(format_comparison, compare_runs(runs, split))
    typer.echo(table())
    if markdown:
        atomic_write_text(markdown, table(markdown=True) + "\n")
        typer.echo(f"written: {markdown}")


@app.command()
@friendly_errors
def report(run: Path = typer.Argument(..., help="Evaluated run folder."), split: str = typer.Option("test"),
           out: Optional[Path] = typer.Option(None, help="HTML file (default RUN/report_<split>.html)."),
           gallery: int = typer.Option(24, help="Images in the gallery: half best, half worst by CIDEr.")):
    """Self-contained HTML page: scores, caption diversity, training plots, best and worst captions with references
    (a tagging run: the indicator table and predicted against true labels per image)."""
    from pipeline.runs.tagging import run_task

    if run_task(run) == "tagging":
        from pipeline.report.tagging_html import write_tagging_report as write_report
    else:
        from pipeline.report.html import write_report
    typer.echo(str(write_report(run, split, out, gallery)))


@app.command()
@friendly_errors
def serve(runs: List[Path] = typer.Argument(..., help="Trained captioning run folders (a run selector compares them)."),
          host: str = typer.Option("127.0.0.1", help="Interface to bind; the default is this machine only."),
          port: int = typer.Option(8000, min=1, max=65535), device: str = typer.Option("auto"),
          beam: int = typer.Option(3, min=1, help="Beam size of every caption."),
          n_best: int = typer.Option(3, min=1, help="Captions listed per image (at most the beam size)."),
          max_mb: float = typer.Option(20.0, help="Largest request body in MB (413 above it)."),
          max_images: int = typer.Option(16, min=1, help="Images per request."),
          allow_urls: bool = typer.Option(False, "--allow-urls", help="Let clients have the server fetch image URLs.")):
    """Caption photos in the browser (a page to drop them on) or over a JSON API (POST /caption)."""
    from pipeline.serve.app import Limits
    from pipeline.serve.server import serve as run_server

    from pipeline.runs.tagging import run_task

    for run in runs:
        if run_task(run) != "captioning":
            raise CapcacheError(f"{run} is a tagging run; serve captions images, so pass captioning runs")
    limits = Limits(max_bytes=int(max_mb * 1024 * 1024), max_images=max_images)
    run_server(runs, host, port, device, beam, n_best, limits, allow_urls, announce=lambda line: typer.echo(line))


@app.command("metrics-check")
@friendly_errors
def metrics_check(folder: Path = typer.Argument(..., help="Flickr8k text folder (Flickr8k.token.txt, ExpertAnnotations.txt)."),
                  json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the result as JSON here.")):
    """Kendall tau-c between each metric and the Flickr8k-Expert human judgements, vs the published values."""
    from pipeline.evaluation.expert import expert_agreement, expert_files
    from pipeline.io import atomic_write_json

    result = expert_agreement(*expert_files(folder))
    typer.echo(result.summary())
    if json_out:
        atomic_write_json(json_out, result.to_dict())
        typer.echo(f"written: {json_out}")


@app.command()
@friendly_errors
def plot(runs: List[Path] = typer.Argument(..., help="One or more run folders."),
         out: Path = typer.Option(Path("plots"), help="Folder for the PNG files.")):
    """Overlay the training curves of several runs."""
    from pipeline.training.plots import plot_runs

    for run in runs:
        if not (run / "metrics.jsonl").is_file():
            raise CapcacheError(f"{run} is not a capcache run folder (no metrics.jsonl); pass folders written by "
                                "`capcache train`")

    for path in plot_runs({r.name: r for r in runs}, out):
        typer.echo(str(path))


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
