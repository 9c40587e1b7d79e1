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
         set_: Optional[List[str]] = typer.Option(None, "--set", help="Training override KEY=VALUE, e.g. epochs=3.")):
    """Generate the offline demo set, extract, train and evaluate, end to end."""
    from pipeline.data.synthetic import SyntheticConfig
    from pipeline.demo import run_demo
    from pipeline.evaluation.table import format_table

    data = SyntheticConfig(n_train=train_images, n_val=eval_images, n_test=eval_images, seed=seed)
    result = run_demo(out, data=data, overrides=set_ or [], device=device, workers=workers)
    typer.echo(result.extraction.summary())
    typer.echo(format_table({"demo (tiny-cnn + att_lstm)": result.evaluation["scores"]}))
    for metric, reason in result.evaluation["unavailable"].items():
        typer.echo(f"{metric} unavailable: {reason}")
    typer.echo(f"run folder: {result.run_dir}")


@app.command("import")
@friendly_errors
def import_(fmt: str = typer.Argument(..., metavar="FORMAT", help="karpathy | flickr8k | kaggle | coco"),
            path: Path = typer.Argument(..., help="Caption file (dataset_*.json, Flickr8k.token.txt, captions.txt, captions_*.json)."),
            images: Path = typer.Option(..., help="Folder holding the image files."),
            out: str = typer.Option(..., help="Manifest name (saved as data_manifests/NAME.json) or a .json path."),
            split: Optional[str] = typer.Option(None, help="COCO: the split of this file (default: from its name)."),
            split_seed: int = typer.Option(0, help="Seed for a random split when the format has none."),
            no_check_files: bool = typer.Option(False, "--no-check-files", help="Don't check image files exist.")):
    """Translate a caption dataset into a capcache manifest."""
    from pipeline.data.importers import import_dataset

    target = Path(out) if out.endswith(".json") else Path("data_manifests") / f"{out}.json"
    result = import_dataset(fmt, path, images, name=target.stem, out=target, split_seed=split_seed,
                            check_files=not no_check_files, split=split)
    typer.echo(result.summary())
    typer.echo(f"manifest: {target}")


@app.command()
@friendly_errors
def extract(manifest: Path = typer.Argument(..., help="Manifest JSON."),
            encoder: str = typer.Option(..., help="Encoder name (see `capcache encoders`)."),
            weights: Optional[str] = typer.Option(None, help="Published name, local file, or random[:SEED]."),
            grid: Optional[int] = typer.Option(None, help="Adaptive-pool the feature map to GRID x GRID."),
            cache_dir: Path = typer.Option(Path("cache"), help="Where cache files live."),
            batch_size: int = typer.Option(32), workers: int = typer.Option(2),
            device: str = typer.Option("auto"), dtype: str = typer.Option("float16", help="float16 | float32")):
    """Run a frozen encoder over every image once and store the features (resumable)."""
    from pipeline.data.manifest import Manifest
    from pipeline.extract import extract as run_extract

    result = run_extract(Manifest.load(manifest), encoder, weights, grid, cache_dir, batch_size, workers, device, dtype)
    typer.echo(result.summary())
    typer.echo(str(result.path))  # last line: the cache path, for scripts


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
          preset: Optional[str] = typer.Option(None, help="demo | resnet-lstm-baseline | resnet-lstm-att | resnet-transformer | clip-transformer"),
          config: Optional[Path] = typer.Option(None, help="JSON or TOML file with config fields."),
          set_: Optional[List[str]] = typer.Option(None, "--set", help="Override KEY=VALUE, e.g. optim.lr=1e-3."),
          resume: bool = typer.Option(False, help="Continue the run in --out where it stopped.")):
    """Train a caption decoder from a feature cache."""
    from pipeline.config import load_file
    from pipeline.training.config import resolve_config
    from pipeline.training.loop import train as run_train

    overrides = [f"data.manifest={manifest.resolve()}"] if manifest else []
    overrides += [f"data.cache={cache.resolve()}"] if cache else []
    cfg = None if resume else resolve_config(preset, load_file(config) if config else None, overrides + (set_ or []))
    result = run_train(cfg, out, resume=resume)
    best = f"{result.best_metric:.4f} (epoch {result.best_epoch})" if result.best_metric is not None else "n/a"
    typer.echo(f"trained {result.epochs} epochs, {result.steps} steps in {result.seconds:.0f} s; best: {best}"
               + ("; stopped early" if result.stopped_early else ""))
    typer.echo(f"run folder: {result.run_dir}")


@app.command("eval")
@friendly_errors
def eval_(run: Path = typer.Argument(..., help="Run folder."), split: str = typer.Option("test"),
          checkpoint: str = typer.Option("best", help="best | last"), batch_size: int = typer.Option(64),
          device: str = typer.Option("auto"), spice: bool = typer.Option(False, help="Also SPICE (needs its download).")):
    """Decode a split with a trained run and score it with pycocoevalcap."""
    from pipeline.evaluation.evaluate_run import evaluate_run
    from pipeline.evaluation.table import format_table

    report = evaluate_run(run, split, checkpoint, batch_size, device=device, spice=spice)
    typer.echo(format_table({run.name: report["scores"]}))
    for metric, reason in report["unavailable"].items():
        typer.echo(f"{metric} unavailable: {reason}")
    typer.echo(f"written: {run / 'eval' / (split + '.json')}")


@app.command()
@friendly_errors
def plot(runs: List[Path] = typer.Argument(..., help="One or more run folders."),
         out: Path = typer.Option(Path("plots"), help="Folder for the PNG files.")):
    """Overlay the training curves of several runs."""
    from pipeline.training.plots import plot_runs

    for path in plot_runs({r.name: r for r in runs}, out):
        typer.echo(str(path))


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
