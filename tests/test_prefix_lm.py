"""The prefix language-model decoder (seed 003, ClipCap) and its subword vocabularies.

The contract every decoder keeps (step = forward, beam 1 = greedy, batched beam = per-image
beam, state reordering, gradients, grouped = flat batches) is tested for ``prefix_lm`` by the
parametrised tests of test_decoders, test_beam and test_training_math; here are the parts of
its own: BPE and pretrained-tokenizer vocabularies, the id mapping to a pretrained LM, both
layouts and all mappers, the key/value cache against full recomputation, training and resuming
through ``train``, a pretrained LM from a local folder, and the one-line offline error.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

import pipeline.training.loop as loop
from pipeline.data.subword import LmTokens, SubwordVocabulary, TRAINED_SPECIALS
from pipeline.data.text import karpathy_words
from pipeline.data.vocab import END_ID, PAD_ID, START_ID, UNK_ID, load_vocabulary
from pipeline.decoders import build_decoder
from pipeline.decoders.config import DecoderConfig
from pipeline.decoders.prefix_lm.language_model import with_scratch_lm
from pipeline.decoding import beam_search, greedy_search
from pipeline.errors import CapcacheError
from pipeline.training.config import resolve_config
from pipeline.data.word_ids import WordIds, reference_ids
from pipeline.training.scst import CiderReward
from pipeline.evaluation.cider_d import DocumentFrequency

from helpers import train_interrupted_after_first_epoch

CAPTIONS = ["A dog runs on the grass .", "Two men play football in a park", "a black dog is running",
            "A girl in a red dress, smiling", "the man's bike is tri-colored"] * 8
L, D = 9, 24
SMALL = DecoderConfig(hidden_dim=32, heads=4, ff_dim=64, lm_layers=2, dropout=0.0, prefix_len=3, feature_proj="linear",
                      proj_dim=32, feature_norm="layernorm", mapper_layers=1)


@pytest.fixture(scope="module")
def bpe() -> SubwordVocabulary:
    return SubwordVocabulary.train_bpe(CAPTIONS, 300)


def _decoder(vocab: SubwordVocabulary, **changes) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_decoder("prefix_lm", with_scratch_lm(replace(SMALL, **changes), vocab.lm), D, L, len(vocab)).eval()


# ----------------------------------------------------------------------------- vocabularies


def test_bpe_puts_the_specials_first_encodes_every_word_and_decodes_to_the_normalised_caption(bpe, tmp_path):
    assert len(bpe) == bpe.lm.size <= 300 and bpe.lm.offset == 0
    assert [bpe._tok.id_to_token(i) for i in range(5)] == list(TRAINED_SPECIALS)
    for caption in CAPTIONS[:5] + ["a zebra unseen in training"]:
        ids = bpe.encode(caption)
        assert ids[0] == START_ID and ids[-1] == END_ID and UNK_ID not in ids  # byte-level: nothing unknown
        assert bpe.decode(ids) == " ".join(karpathy_words(caption))
    assert len(bpe.encode("two men play football in a park", max_len=3)) == 5  # <start> 3 tokens <end>
    bpe.save(tmp_path / "vocab.json")
    again = load_vocabulary(tmp_path / "vocab.json")
    assert isinstance(again, SubwordVocabulary) and again.encode(CAPTIONS[1]) == bpe.encode(CAPTIONS[1])
    assert SubwordVocabulary.train_bpe(CAPTIONS, 300).tokenizer_json == bpe.tokenizer_json  # deterministic
    with pytest.raises(CapcacheError, match="GloVe"):
        bpe.words


def test_a_pretrained_tokenizer_keeps_its_ids_behind_the_four_specials():
    tok = _gpt2_style_tokenizer()
    eos = tok.token_to_id("<|endoftext|>")
    vocab = SubwordVocabulary.from_pretrained(tok.to_str(), "local", bos=eos, eos=eos)
    assert vocab.lm.offset == 4 and vocab.lm.sep == tok.get_vocab_size()  # <sep> added as a new id
    assert len(vocab) == 4 + vocab.lm.size
    ids = vocab.encode("a black dog")
    assert ids[1:-1] == [4 + i for i in tok.encode("a black dog").ids]
    assert vocab.decode(ids) == "a black dog"
    lm_ids = vocab.lm.lm_ids()
    assert lm_ids[START_ID] == lm_ids[END_ID] == eos and lm_ids[4 + 7] == 7
    assert set(vocab.lm.dead_ids()) == {PAD_ID, START_ID, UNK_ID, 4 + eos}


def test_with_an_offset_the_vocabulary_softmax_is_exactly_the_lms_own():
    """<end> and the LM's eos are one choice: <end> gets eos's probability, the duplicate none."""
    tokens = LmTokens(offset=4, bos=9, eos=9, sep=10, size=11)
    torch.manual_seed(0)
    dec = build_decoder("prefix_lm", with_scratch_lm(SMALL, tokens), D, L, 15).eval()
    feats = torch.randn(2, L, D)
    with torch.no_grad():
        log_probs, _ = dec.step(dec.init_state(feats), torch.full((2,), START_ID))  # [2, 15]
        x = torch.cat([dec.prefix(feats), dec.embed(torch.full((2, 1), 9))], 1)  # the LM's own input: <start> as bos
        lm_log_probs = dec.head(dec.body(inputs_embeds=x).last_hidden_state[:, -1]).log_softmax(-1)  # [2, 11]
    torch.testing.assert_close(log_probs[:, END_ID], lm_log_probs[:, 9])
    others = [t for t in range(11) if t != 9]
    torch.testing.assert_close(log_probs[:, [4 + t for t in others]], lm_log_probs[:, others])
    assert torch.all(log_probs[:, [PAD_ID, START_ID, UNK_ID, 4 + 9]].exp() == 0)


# ----------------------------------------------------------------------------- the decoder


@pytest.mark.parametrize("mapper,layout", [("linear", "seed003"), ("mlp", "prefix"), ("transformer", "prefix"),
                                           ("transformer", "seed003"), ("grid", "prefix")])
def test_every_mapper_and_layout_steps_exactly_like_the_full_forward(bpe, mapper, layout):
    dec = _decoder(bpe, mapper=mapper, layout=layout)
    feats = torch.randn(3, L, D)
    tokens = torch.tensor([bpe.encode(c, 5)[:6] for c in CAPTIONS[:3]])  # [3, 6], <start> first
    with torch.no_grad():
        full = dec(feats, tokens).logits.log_softmax(-1)  # [3, 6, V]
        state = dec.init_state(feats)
        for t in range(tokens.size(1)):
            step, state = dec.step(state, tokens[:, t])
            torch.testing.assert_close(step, full[:, t], atol=1e-5, rtol=1e-5)
    prefix = L if mapper == "grid" else 3  # every cell, or the k = 3 image embeddings
    prefix += layout == "seed003"  # <bos> before them
    assert state["k0"].shape[2] == prefix + tokens.size(1)  # one cached position per token fed


def test_the_key_value_cache_decodes_exactly_what_full_recomputation_does(bpe):
    cached = _decoder(bpe, mapper="transformer")
    uncached = _decoder(bpe, mapper="transformer", lm_kv_cache=False)
    uncached.load_state_dict(cached.state_dict())
    with torch.no_grad():
        bias = cached.logit_bias
        bias[END_ID] = 2.0  # captions of varied lengths
        uncached.logit_bias.copy_(bias)
        feats = torch.randn(4, L, D)
        assert greedy_search(cached, feats, 12)[0] == greedy_search(uncached, feats, 12)[0]
        a, b = beam_search(cached, feats, 3, 12), beam_search(uncached, feats, 3, 12)
    assert [[h.tokens for h in hs] for hs in a] == [[h.tokens for h in hs] for hs in b]
    for ha, hb in zip(a, b):
        assert [h.log_prob for h in ha] == pytest.approx([h.log_prob for h in hb], abs=1e-4)


def test_a_frozen_lm_gets_no_gradient_and_no_dropout(bpe):
    dec = _decoder(bpe, lm_frozen=True, dropout=0.5, mapper="transformer").train()
    assert not dec.lm.training and dec.mapper.training
    out = dec(torch.randn(2, L, D), torch.tensor([bpe.encode(c, 4)[:5] for c in CAPTIONS[:2]]))
    out.logits.logsumexp(-1).mean().backward()
    assert all(p.grad is None for p in dec.lm.parameters())
    assert all(p.grad is not None for p in dec.mapper.parameters())


def test_building_without_a_resolved_lm_says_how_to_get_one():
    with pytest.raises(CapcacheError, match="lm_resolved"):
        build_decoder("prefix_lm", SMALL, D, L, 40)


# ----------------------------------------------------------------------------- training


PREFIX_FAST = ["decoder=prefix_lm", "epochs=3", "batch_size=16", "val_max_images=10", "model.hidden_dim=32",
               "model.heads=2", "model.ff_dim=64", "model.lm_layers=2", "model.prefix_len=3", "model.bpe_vocab=300",
               "model.dropout=0.1"]


def _config(tiny_set, *extra: str):
    manifest, cache = tiny_set
    return resolve_config("demo", None, [f"data.manifest={manifest}", f"data.cache={cache}", *PREFIX_FAST, *extra])


@pytest.fixture(scope="module")
def prefix_run(tiny_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("prefix") / "straight"
    return loop.train(_config(tiny_set), out, progress=False), out


def test_a_prefix_lm_run_records_its_lm_trains_and_resumes_bit_for_bit(tiny_set, prefix_run, tmp_path, monkeypatch):
    straight, folder = prefix_run
    config = json.loads((folder / "config.json").read_text())
    assert config["model"]["lm_resolved"]["config"]["model_type"] == "gpt2"
    assert json.loads((folder / "vocab.json").read_text())["kind"] == "subword"
    epochs = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in epochs if r["kind"] == "epoch"]
    assert losses[-1] < losses[0]

    train_interrupted_after_first_epoch(monkeypatch, _config(tiny_set), tmp_path / "resumed")
    torch.manual_seed(1234)
    resumed = loop.train(None, tmp_path / "resumed", resume=True, progress=False)
    assert resumed.steps == straight.steps
    a = torch.load(folder / "checkpoints/last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_prefix_lm_run_evaluates_captions_new_images_and_reports_like_any_run(tiny_set, prefix_run, tmp_path):
    from pipeline.data.manifest import Manifest
    from pipeline.decoding import DecodingConfig
    from pipeline.evaluation.evaluate_run import evaluate_run
    from pipeline.inference.caption_images import caption_images
    from pipeline.report.html import write_report

    _, folder = prefix_run
    manifest = Manifest.load(tiny_set[0])
    test = manifest.split("test")
    result = evaluate_run(folder, split="test", decoding=DecodingConfig.from_beam(3))
    assert result["decoding"]["beam_size"] == 3 and {"BLEU-4", "CIDEr"} <= set(result["scores"])
    assert len(result["captions"]) == len(test) and all(c["caption"] for c in result["captions"])
    assert all("<" not in c["caption"] for c in result["captions"])  # no special token ever reaches a caption
    captioned = caption_images(folder, [manifest.image_path(r, tiny_set[0].parent) for r in test[:3]],
                               DecodingConfig.from_beam(2), workers=0)
    assert len(captioned.images) == 3 and all(im.caption.strip() for im in captioned.images)
    assert "<h1" in write_report(folder, split="test").read_text()


def test_a_pretrained_lm_from_a_local_folder_is_loaded_and_stays_frozen(tiny_set, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    manifest, _ = tiny_set
    from pipeline.data.manifest import Manifest
    captions = [c for r in Manifest.load(manifest).split("train") for c in r.captions]
    tok = _gpt2_style_tokenizer(captions)
    eos = tok.token_to_id("<|endoftext|>")
    folder = tmp_path / "my-lm"
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>").save_pretrained(folder)
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                    bos_token_id=eos, eos_token_id=eos))
    lm.save_pretrained(folder)
    loop.train(_config(tiny_set, f"model.lm={folder}", "model.lm_frozen=true", "epochs=1"), tmp_path / "run", progress=False)
    vocab = load_vocabulary(tmp_path / "run/vocab.json")
    assert vocab.lm.offset == 4 and vocab.source == str(folder)
    saved = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=False)["model"]
    for name, weight in lm.state_dict().items():
        mine = saved[f"lm.{name}"]
        if name.endswith("wte.weight") or name == "lm_head.weight":  # one row more: <sep>
            assert mine.shape[0] == weight.shape[0] + 1
            mine = mine[:-1]
        assert torch.equal(mine, weight), name  # loaded, and frozen through training


def test_a_hub_lm_offline_fails_at_once_with_one_line(tiny_set, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(CapcacheError) as info:
        loop.train(_config(tiny_set, "model.lm=gpt2"), tmp_path / "run", progress=False)
    message = str(info.value)
    assert "\n" not in message and "language model 'gpt2' not found locally" in message
    assert "HF_HUB_OFFLINE=1" in message and "--set model.lm=scratch" in message


# ----------------------------------------------------------------------------- self-critical rewards


def test_scst_rewards_count_words_not_word_pieces(bpe):
    words = WordIds(bpe)
    refs = reference_ids([["a black dog is running", "a dog runs"]], words, end_token=False)
    df = DocumentFrequency.from_references(refs + [[[9, 9, 9]]])
    reward = CiderReward(refs, df, end_token=False, words=words)
    same = bpe.encode("a black dog is running")[1:-1]  # subword ids, decoded to words by the reward
    other = bpe.encode("two men play football")[1:-1]
    scores = reward([0, 0], [same, other], [True, True])
    by_words = CiderReward(refs, df, end_token=False)(
        [0], [words.of_text("a black dog is running")], [True])
    assert scores[0] == pytest.approx(by_words[0]) and scores[0] > 0 and scores[1] == 0.0


def _gpt2_style_tokenizer(captions: list[str] = CAPTIONS):
    """A byte-level BPE with GPT-2's one special token, as a pretrained tokenizer.json has it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([" ".join(karpathy_words(c)) for c in captions],
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok
