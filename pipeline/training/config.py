"""The training config and the presets that reproduce the seed models.

Presets (documented in docs/reproduce.md): ``resnet-lstm-att``, ``resnet-transformer`` and
``clip-transformer`` follow seed 000's three Flickr8k models, ``resnet-lstm-baseline`` seed 001
(2-layer LSTM, embedding 256, hidden 512, Adam 3e-4, ReduceLROnPlateau x0.5 after 3 epochs,
clip 5, batch 64, 20 epochs, 70 % teacher forcing); ``demo`` is sized for the synthetic set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.config import apply_overrides, from_dict, merge, resolve, to_dict
from pipeline.decoders.config import DecoderConfig
from pipeline.data.text import tokenizer
from pipeline.errors import CapcacheError
from pipeline.evaluation.scorers import METRICS

VAL_METRICS = (*METRICS, "loss")  # "loss": the lowest validation cross-entropy wins
OBJECTIVES = ("xe", "scst")
SCST_BASELINES = ("mean", "greedy")


@dataclass
class DataConfig:
    manifest: str = ""  # path of the manifest JSON
    cache: str = ""  # path of the feature cache (.h5)
    encoder: str = ""  # encoder the cache must come from (presets name theirs); "" accepts any
    min_freq: int = 5  # words seen fewer times in train captions become <unk>
    max_words: int = 30  # longer captions are cut (the <end> token is kept)
    tokenizer: str = "karpathy"  # "karpathy" (punctuation deleted: "mans") | "ptb" (as scored: "man 's")
    captions_per_image: int = 1  # captions sampled per image each epoch; 0 = every caption
    group_by_image: bool = True  # a batch holds images with their captions (per-image work done once)
    in_memory: bool = True  # load the whole cache into RAM (False: stream rows from HDF5)
    workers: int = 0  # DataLoader worker processes
    views: int = 0  # augmented views (extract --views K) drawn with the clean features, one per image and epoch


@dataclass
class OptimConfig:
    optimizer: str = "adam"  # "adam" | "adamw"
    lr: float = 3e-4
    weight_decay: float = 0.0
    schedule: str = "plateau"  # "plateau" | "cosine" | "linear" (both per batch, after warm-up) | "none"
    warmup_steps: int = 0  # linear warm-up (cosine schedule)
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    grad_clip: float = 5.0  # max gradient norm; 0 = no clipping
    label_smoothing: float = 0.0


@dataclass
class ScstConfig:
    """Self-critical sequence training (``objective="scst"``; pipeline/training/scst.py)."""
    samples: int = 5  # captions sampled per image each step
    baseline: str = "mean"  # "mean": the other samples' mean reward (Luo 2020) | "greedy": the greedy caption's (Rennie 2017)
    temperature: float = 1.0  # sampling temperature
    entropy: float = 0.0  # weight of an entropy bonus per token (keeps sampling from collapsing early)
    end_token: bool = True  # <end> counts as a word in the reward, so captions that stop mid-phrase score lower
    dropout: bool = False  # score the samples with dropout on (ruotianluo's self-critical.pytorch); measured worse, docs/scst.md


@dataclass
class TrainConfig:
    decoder: str = "att_lstm"
    model: DecoderConfig = field(default_factory=DecoderConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 20
    batch_size: int = 64
    teacher_forcing: float = 1.0  # < 1: scheduled sampling for recurrent decoders
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision on CUDA
    val_metric: str = "CIDEr"  # chooses the best checkpoint and drives early stopping: a metric name, or "loss"
    val_max_images: int = 1000  # images greedy-decoded for validation metrics each epoch
    early_stop: int = 0  # stop after this many epochs without val_metric improving; 0 = never
    max_decode_len: int = 20
    log_every: int = 10  # steps between batch-level metric lines
    checkpoint_every: int = 1000  # also save "last" every this many steps within an epoch (0: at epoch ends only)
    objective: str = "xe"  # "xe": cross-entropy (teacher forcing) | "scst": self-critical, CIDEr-D reward
    scst: ScstConfig = field(default_factory=ScstConfig)
    init_from: str = ""  # a run folder: start from its best weights and its vocabulary (`capcache finetune`)

    def to_dict(self) -> dict:
        return to_dict(self)

    def check(self) -> "TrainConfig":
        """Refuse settings that would otherwise be silently replaced (as HF Trainer does for
        ``metric_for_best_model``): the metric that picks the best checkpoint must be computable."""
        if self.val_metric not in VAL_METRICS:
            raise CapcacheError(f"unknown val_metric {self.val_metric!r}; choose one of {', '.join(VAL_METRICS)}")
        tokenizer(self.data.tokenizer)  # an unknown style is refused here, not after the cache is loaded
        if self.objective not in OBJECTIVES:
            raise CapcacheError(f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        if self.scst.baseline not in SCST_BASELINES:
            raise CapcacheError(f"unknown scst.baseline {self.scst.baseline!r}; choose one of {', '.join(SCST_BASELINES)}")
        if self.objective == "scst" and self.scst.baseline == "mean" and self.scst.samples < 2:
            raise CapcacheError("scst.baseline=mean needs scst.samples >= 2 (the baseline is the other samples' mean)")
        if self.data.views < 0:
            raise CapcacheError(f"data.views={self.data.views} is out of range; 0 trains on the clean features only")
        if self.scst.samples < 1 or self.scst.temperature <= 0:
            raise CapcacheError("scst.samples must be >= 1 and scst.temperature > 0")
        return self

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return from_dict(cls, data)


# Seed 000 trains its two Transformer captioners alike; they differ only in the features they read.
_SEED_000_TRANSFORMER = {
    "decoder": "transformer", "epochs": 20, "batch_size": 64,
    "model": {"hidden_dim": 512, "num_layers": 3, "heads": 8, "ff_dim": 2048, "dropout": 0.1,
              "feature_proj": "linear", "proj_dim": 512, "grid_encoder_layers": 2},
    "optim": {"optimizer": "adamw", "lr": 1e-4, "weight_decay": 1e-2, "schedule": "cosine",
              "warmup_steps": 1000, "grad_clip": 1.0, "label_smoothing": 0.1},
}

PRESETS: dict[str, dict] = {
    "demo": {  # ~3 minutes on 2 CPU cores; the synthetic captions run up to 28 words
        "decoder": "att_lstm", "epochs": 4, "batch_size": 64, "max_decode_len": 30,
        "model": {"embed_dim": 128, "hidden_dim": 256, "attention_dim": 128, "dropout": 0.3,
                  "feature_norm": "batchnorm"},
        "data": {"encoder": "tiny-cnn", "min_freq": 1, "captions_per_image": 0},
        "optim": {"lr": 3e-3, "schedule": "cosine", "warmup_steps": 30},
        "val_max_images": 200,
    },
    "resnet-lstm-baseline": {  # seed 001
        "decoder": "show_tell", "epochs": 20, "batch_size": 64, "teacher_forcing": 0.7,
        "data": {"encoder": "resnet50"},
        "model": {"embed_dim": 256, "hidden_dim": 512, "num_layers": 2, "dropout": 0.5},
        "optim": {"optimizer": "adam", "lr": 3e-4, "schedule": "plateau", "plateau_factor": 0.5,
                  "plateau_patience": 3, "grad_clip": 5.0},
    },
    "resnet-lstm-att": {  # seed 000: CNN -> pool -> conv proj -> posenc -> Transformer encoder; LSTM + attention
        "decoder": "att_lstm", "epochs": 20, "batch_size": 64,
        "data": {"encoder": "resnet50"},
        "model": {"embed_dim": 512, "hidden_dim": 512, "attention_dim": 512, "dropout": 0.5,
                  "feature_proj": "conv", "proj_dim": 512, "grid_encoder_layers": 2, "heads": 8, "ff_dim": 2048},
        "optim": {"optimizer": "adamw", "lr": 3e-4, "weight_decay": 1e-4, "schedule": "cosine",
                  "warmup_steps": 500, "grad_clip": 5.0},
    },
    # seed 000: CNN -> pool -> linear proj -> posenc -> Transformer encoder; Transformer decoder
    "resnet-transformer": merge(_SEED_000_TRANSFORMER, {"data": {"encoder": "resnet50"}}),
    # seed 000: CLIP ViT-B/32 patch tokens -> linear proj -> posenc -> encoder; the same decoder
    "clip-transformer": merge(_SEED_000_TRANSFORMER, {"data": {"encoder": "clip-vit-b-32"}}),
}

# The seed-000 architectures at the width 2 CPU cores train in about 45 minutes on Flickr8k with
# efficientnet_lite0 features (docs/results_flickr8k_224.md has the measurements behind each value):
# every caption of every image each epoch (grouped batches make the other four nearly free),
# layer-normalised features, half-width attention / model, a short warm-up and a higher rate.
_CPU_WIDTH = {"data": {"encoder": "efficientnet_lite0", "captions_per_image": 0},
              "model": {"feature_norm": "layernorm", "proj_dim": 256, "heads": 4, "ff_dim": 1024}}
PRESETS["cpu-lstm-att"] = merge(PRESETS["resnet-lstm-att"], merge(_CPU_WIDTH, {
    "epochs": 7, "batch_size": 128, "model": {"embed_dim": 256, "attention_dim": 256},
    "optim": {"lr": 1e-3, "warmup_steps": 100}}))
PRESETS["cpu-transformer"] = merge(PRESETS["resnet-transformer"], merge(_CPU_WIDTH, {
    "epochs": 7, "model": {"hidden_dim": 256}, "optim": {"lr": 5e-4, "warmup_steps": 300}}))


# Seed 003's GPT-2 decoder and ClipCap's two settings (Mokady et al. 2021; rmokady/CLIP_prefix_caption
# train.py): AdamW 2e-5, 5,000 warm-up steps then linear decay, batch 40, 10 epochs, prefix of 10.
# The mapper has no dropout there; a pretrained LM keeps its own (GPT-2: 0.1), and a frozen one
# runs in eval mode. ClipCap scores GPT-2's raw text; here captions are normalised as for every
# decoder (data.tokenizer), so all decoders are scored alike.
_CLIPCAP = {"decoder": "prefix_lm", "epochs": 10, "batch_size": 40,
            "data": {"encoder": "clip-vit-b-32"},
            "model": {"lm": "gpt2", "prefix_len": 10, "dropout": 0.0},
            "optim": {"optimizer": "adamw", "lr": 2e-5, "weight_decay": 0.0, "schedule": "linear",
                      "warmup_steps": 5000, "grad_clip": 0.0, "label_smoothing": 0.0}}
PRESETS["clipcap-mlp"] = merge(_CLIPCAP, {"model": {"mapper": "mlp"}})  # GPT-2 fine-tuned
PRESETS["clipcap-transformer"] = merge(_CLIPCAP, {  # GPT-2 frozen; 8 mapper layers of GPT-2's width, MLP ratio 2
    "model": {"mapper": "transformer", "lm_frozen": True, "mapper_layers": 8, "feature_proj": "linear",
              "proj_dim": 768, "heads": 8, "ff_dim": 1536}})
# Seed 003: frozen ResNet-18, one trainable projection to a single image embedding, GPT-2 reading
# <bos>, image, <sep>, caption (the seed gives no optimiser settings; ClipCap's fine-tuning ones).
PRESETS["seed003-gpt2"] = merge(_CLIPCAP, {"data": {"encoder": "resnet18"},
                                           "model": {"mapper": "linear", "prefix_len": 1, "layout": "seed003"}})
# A GPT-2 trained from scratch with the rest on 2 CPU cores (docs/results_flickr8k_224.md): the
# cpu-transformer's width and schedule at twice its rate, a byte-level BPE of the train captions,
# and every grid cell as one prefix embedding (learned queries compressing the grid into 10 gave
# fluent but ungrounded captions, val CIDEr 0.26 after 3 epochs); captions cut at 20 tokens, the
# longest a decoding step count of 20 can emit (longer ones only pad every batch).
PRESETS["cpu-prefix-lm"] = merge(_CPU_WIDTH, {
    "decoder": "prefix_lm", "epochs": 7, "batch_size": 64, "data": {"max_words": 20},
    "model": {"lm": "scratch", "hidden_dim": 256, "lm_layers": 3, "dropout": 0.1, "bpe_vocab": 3000,
              "mapper": "grid", "feature_proj": "linear"},
    "optim": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-2, "schedule": "cosine", "warmup_steps": 300,
              "grad_clip": 1.0, "label_smoothing": 0.1}})

# The demo with a language model: a 2-layer GPT-2 of width 128 over a BPE of the synthetic
# captions, 4 learned queries reading the tiny-cnn grid (`capcache demo --preset demo-prefix-lm`).
PRESETS["demo-prefix-lm"] = merge(PRESETS["demo"], {
    "decoder": "prefix_lm",
    "model": {"hidden_dim": 128, "heads": 4, "ff_dim": 256, "lm_layers": 2, "dropout": 0.1, "bpe_vocab": 400,
              "prefix_len": 4, "mapper": "transformer", "mapper_layers": 1, "feature_proj": "linear", "proj_dim": 128},
    "optim": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-2}})

# `capcache finetune RUN --scst`: RUN's own config with these changes. Self-critical training
# fine-tunes at a small constant rate (Rennie et al. 2017: 5e-5; 1e-4 measured on Flickr8k val,
# docs/scst.md); an epoch visits each train image once, with ``scst.samples`` samples, so
# ``batch_size`` sampled captions are batch_size / samples images.
SCST_FINETUNE = {"objective": "scst", "epochs": 10, "early_stop": 0, "data": {"captions_per_image": 1},
                 "optim": {"lr": 1e-4, "schedule": "none", "warmup_steps": 0, "label_smoothing": 0.0}}


def finetune_config(source: dict, source_dir: str, scst: bool, overrides: list[str] | None = None) -> TrainConfig:
    """A run that starts from ``source_dir``'s best weights: its config (``source``) <- SCST changes <- overrides."""
    data = merge(source, SCST_FINETUNE) if scst else dict(source)
    data["init_from"] = source_dir
    return apply_overrides(TrainConfig.from_dict(data), overrides or []).check()


def resolve_config(preset: str | None = None, file_data: dict | None = None,
                   overrides: list[str] | None = None) -> TrainConfig:
    """Defaults <- preset <- config file <- ``key=value`` overrides (e.g. ``optim.lr=1e-3``)."""
    return resolve(TrainConfig, PRESETS, preset, file_data, overrides)
