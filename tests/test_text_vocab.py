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
