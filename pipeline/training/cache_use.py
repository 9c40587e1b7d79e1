"""The feature cache a training run reads: opened in RAM when it fits, and checked to be the one
the run's manifest and encoder (and, on resume, its first session) expect."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from pipeline.cache.key import CacheSpec, image_digests, images_present
from pipeline.cache.reader import FeatureCache, fits_in_memory
from pipeline.cache.views import view_caches
from pipeline.data.manifest import Manifest
from pipeline.decoders.config import DecoderConfig
from pipeline.decoders.grid import BOX_GEOMETRY
from pipeline.errors import CapcacheError
from pipeline.io import read_json
from pipeline.runs.folder import RunFolder


def open_cache(path: str, in_memory: bool, progress: bool) -> FeatureCache:
    """In RAM when asked and it fits; a cache larger than memory is streamed from disk instead of
    killing the run (or the Kaggle kernel) with an out-of-memory error."""
    if in_memory and Path(path).is_file() and not fits_in_memory(path):
        in_memory = False
        if progress:
            tqdm.write(f"cache {Path(path).name} does not fit in the free RAM; streaming it from disk")
    return FeatureCache(path, in_memory=in_memory)


def check_cache(cache: FeatureCache, manifest: Manifest, encoder: str, run: RunFolder, resume: bool) -> None:
    """The cache must hold this manifest's images: same names, and same files when they are on disk
    (training itself needs only the cache, so images that are gone are checked by name alone), and
    come from the encoder the config was written for."""
    built_with = cache.spec.encoder["encoder"]
    view = cache.spec.encoder.get("view")
    if view:
        raise CapcacheError(f"cache {cache.path.name} holds augmented view {view['index']} of the images; pass the "
                            "clean cache as data.cache and draw the views with --set data.views=K")
    if encoder and built_with != encoder:
        raise CapcacheError(f"cache {cache.path.name} holds {built_with} features but the config expects {encoder} "
                            f"(data.encoder); extract with --encoder {encoder}, or pass --set data.encoder={built_with}")
    image_set, image_names = image_digests(manifest)
    same = cache.spec.image_set == image_set if images_present(manifest) else cache.spec.image_names == image_names
    if not same:
        raise CapcacheError(f"cache {cache.path.name} was extracted from another image set than manifest "
                            f"{manifest.name!r}; run `capcache extract` on this manifest")
    if resume and run.cache_info.is_file():
        stored = read_json(run.cache_info)
        if stored["key"] != cache.key:
            diff = "; ".join(CacheSpec.from_dict(stored["spec"]).differences(cache.spec))
            raise CapcacheError(f"run {run.root} was trained on cache key {stored['key']}, not {cache.key} ({diff}); "
                                "resume with the original cache")


def open_views(cache: FeatureCache, views: int, in_memory: bool, progress: bool,
               run: RunFolder, resume: bool) -> list[FeatureCache]:
    """The caches of views 1..``views`` of the clean ``cache`` (``pipeline.cache.views``); on resume,
    the very views the run started with."""
    if not views:
        return []
    opened = [open_cache(str(p), in_memory, progress) for p in view_caches(cache.path, cache.spec, views)]
    if resume and run.cache_info.is_file():
        stored = [v["key"] for v in read_json(run.cache_info).get("views", [])]
        if stored != [v.key for v in opened]:
            raise CapcacheError(f"run {run.root} was trained on views with keys {', '.join(stored) or 'none'}, not "
                                f"{', '.join(v.key for v in opened)}; resume with the original views")
    if progress:
        tqdm.write(f"views: {', '.join(v.path.name for v in opened)}")
    return opened


def check_token_positions(cache: FeatureCache, model: DecoderConfig) -> None:
    """``model.token_positions=boxes`` reads the last numbers of every token as a box; only a region encoder's
    tokens end in one (its ``describe()`` lists them as ``box_geometry``). The model sees numbers, not where
    they came from, so this is where a grid cache is told apart, before a decoder learns from its features."""
    if model.token_positions != "boxes":
        return
    geometry = cache.spec.encoder.get("options", {}).get("box_geometry") or []
    if len(geometry) != BOX_GEOMETRY:
        built_with = cache.spec.encoder["encoder"]
        raise CapcacheError(f"model.token_positions=boxes needs tokens ending in {BOX_GEOMETRY} box numbers, but cache "
                            f"{cache.path.name} holds {built_with} features without boxes; extract with --encoder "
                            "fasterrcnn_regions, or set model.token_positions=learned")


def cache_record(cache: FeatureCache, views: list[FeatureCache] = ()) -> dict:
    """What a run folder's cache.json keeps: enough to rebuild the model's input shape and the
    encoder for new images (and run it as the cache was computed), and to refuse another cache (or
    other views) on resume."""
    return {"path": str(cache.path), "key": cache.key, "n_tokens": cache.n_tokens, "feature_dim": cache.dim,
            "spec": cache.spec.to_dict(), "compute": cache.compute,
            "views": [{"path": str(v.path), "key": v.key} for v in views]}
