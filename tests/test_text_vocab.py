import pytest

from pipeline.data.text import tokenize
from pipeline.data.vocab import END_ID, PAD_ID, SPECIALS, START_ID, UNK_ID, Vocabulary
from pipeline.errors import CapcacheError


def test_tokenize_follows_karpathy():
    # punctuation deleted (not split on), lower-cased, white space split: as neuraltalk's prepro
    assert tokenize("A black dog and a tri-colored dog playing with each other on the road .") == \
        "a black dog and a tricolored dog playing with each other on the road".split()
    assert tokenize("  Two dogs, one ball!  ") == ["two", "dogs", "one", "ball"]
    assert tokenize("A") == ["a"]
    assert tokenize(" . ") == []


def test_vocab_min_freq_specials_and_round_trip(tmp_path):
    caps = ["a dog runs", "a dog sits", "a cat sits", "the zebra"]
    vocab = Vocabulary.build(caps, min_freq=2)
    assert vocab.words[:4] == list(SPECIALS)
    assert set(vocab.words[4:]) == {"a", "dog", "sits"}
    assert vocab.words[4] == "a"  # most frequent first
    ids = vocab.encode("A dog sits.")
    assert ids[0] == START_ID and ids[-1] == END_ID
    assert vocab.decode(ids) == "a dog sits"
    assert vocab.encode("a zebra")[2] == UNK_ID
    assert vocab.decode([START_ID, 4, 5, END_ID, 6, PAD_ID]) == "a dog"
    assert vocab.encode("a dog sits a dog sits", max_len=2) == [START_ID, 4, 5, END_ID]
    vocab.save(tmp_path / "vocab.json")
    again = Vocabulary.load(tmp_path / "vocab.json")
    assert again.words == vocab.words and again.min_freq == 2


def test_empty_vocabulary_is_a_clear_error():
    with pytest.raises(CapcacheError, match="empty vocabulary"):
        Vocabulary.build(["one two", "three"], min_freq=5)


def test_ptb_style_splits_clitics_as_the_scorer_does(tmp_path):
    assert tokenize("A man's dog isn't wet.", "ptb") == ["a", "man", "'s", "dog", "is", "n't", "wet"]
    assert tokenize("A man's dog isn't wet.") == ["a", "mans", "dog", "isnt", "wet"]  # karpathy, the default
    vocab = Vocabulary.build(["a man's dog", "the man's cat", "a dog"], min_freq=2, style="ptb")
    assert "'s" in vocab.words and "mans" not in vocab.words
    assert vocab.decode(vocab.encode("A man's dog.")) == "a man 's dog"  # the scorer's own tokens
    vocab.save(tmp_path / "vocab.json")
    again = Vocabulary.load(tmp_path / "vocab.json")
    assert again.tokenizer == "ptb" and again.encode("a man's dog") == vocab.encode("a man's dog")


def test_a_vocabulary_saved_before_tokenizer_styles_loads_as_karpathy(tmp_path):
    (tmp_path / "vocab.json").write_text('{"min_freq": 1, "words": ["<pad>", "<start>", "<end>", "<unk>", "mans"]}')
    vocab = Vocabulary.load(tmp_path / "vocab.json")
    assert vocab.tokenizer == "karpathy" and vocab.encode("man's")[1] == 4


def test_unknown_tokenizer_is_refused_when_the_config_is_resolved():
    from pipeline.training.config import resolve_config
    with pytest.raises(CapcacheError, match="unknown tokenizer 'spacy'; use karpathy or ptb"):
        resolve_config("demo", None, ["data.tokenizer=spacy"])
    assert resolve_config("demo", None, ["data.tokenizer=ptb"]).data.tokenizer == "ptb"
