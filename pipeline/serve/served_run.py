"""One trained captioning run, loaded once and kept: decoder, vocabulary and its own encoder.

``caption`` takes a batch of decoded uploads and returns, per image, the beam's n-best captions
with their log-probabilities and, for attention decoders, one overlay per emitted word; it runs
in the run's batcher thread, in inference mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from pipeline.decoding.beam import beam_search
from pipeline.encoders.base import token_grid
from pipeline.inference.caption_images import attention_weights
from pipeline.extract.new_files import FileEncoder
from pipeline.io import read_json
from pipeline.serve.batcher import Batcher
from pipeline.serve.overlay import overlay_png
from pipeline.runs.load import load_trained


@dataclass
class Decoded:
    tensor: torch.Tensor  # [3, S, S] encoder input
    preview: Image.Image  # the picture the encoder saw (Preprocessing.view), for overlays


class ServedRun:
    def __init__(self, run_dir: str | Path, name: str, device: str = "auto", beam: int = 3, n_best: int = 3,
                 max_batch: int = 16, weights: str | None = None):
        self.name = name
        self.trained = load_trained(run_dir, "best", device)
        cache_info = read_json(self.trained.run.cache_info)
        self.encoder_name = cache_info["spec"]["encoder"]["encoder"]
        self.encoder = FileEncoder(cache_info, self.trained.device, weights)
        self.transform = self.encoder.preprocessing.transform()
        self.input_key = repr(self.encoder.preprocessing)  # runs with equal keys can share a decoded upload
        self.grid = token_grid(cache_info["spec"]["encoder"], cache_info["n_tokens"])
        self.beam, self.n_best = max(beam, 1), max(1, min(n_best, beam))
        self.max_len = self.trained.config.max_decode_len
        self.attends = self.grid is not None and self._gives_attention(cache_info["n_tokens"], cache_info["feature_dim"])
        self.batcher: Batcher[Decoded, dict] = Batcher(self.caption, max_batch, name=f"decode {name}")

    @torch.inference_mode()
    def _gives_attention(self, n_tokens: int, dim: int) -> bool:
        """Whether the decoder returns attention weights (att_lstm, att_gru): one teacher-forced token."""
        dev = self.trained.device
        out = self.trained.decoder.eval()(torch.zeros(1, n_tokens, dim, device=dev), torch.ones(1, 2, dtype=torch.long, device=dev))
        return out.attention is not None

    def describe(self) -> dict:
        return {"name": self.name, "decoder": self.trained.config.decoder,
                "encoder": self.encoder_name,
                "beam": self.beam, "n_best": self.n_best, "attention": self.attends,
                "images_captioned": self.batcher.items, "batches": self.batcher.batches}

    @torch.inference_mode()
    def caption(self, items: list[Decoded]) -> list[dict]:
        self.trained.decoder.eval()
        images = torch.stack([d.tensor for d in items])  # [B, 3, S, S]
        feats = self.encoder.encode(images)  # [B, L, D] as a cache row would hold them
        hyps = beam_search(self.trained.decoder, feats, self.beam, self.max_len, n_best=self.n_best)
        best = [h[0] for h in hyps]
        maps = attention_weights(self.trained.decoder, feats, [h.tokens for h in best], [h.ended for h in best]) \
            if self.attends else [None] * len(items)
        vocab = self.trained.vocab
        return [{"run": self.name, "caption": vocab.decode(h[0].tokens),
                 "nbest": [{"caption": vocab.decode(x.tokens), "log_prob": round(x.log_prob, 4),
                            "score": round(x.score, 4)} for x in h],
                 "attention": self._overlays(d, vocab.decode(h[0].tokens).split(), m, h[0].ended)}
                for d, h, m in zip(items, hyps, maps)]

    def _overlays(self, decoded: Decoded, words: list[str], weights, ended: bool) -> list[dict]:
        if weights is None:
            return []
        tokens = [*words, *(["<end>"] if ended else [])]
        return [{"word": w, "png": overlay_png(decoded.preview, row, self.grid)} for w, row in zip(tokens, weights)]

    def close(self) -> None:
        self.batcher.close()
