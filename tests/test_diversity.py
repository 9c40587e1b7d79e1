"""Diversity figures on cases small enough to count by hand."""

from __future__ import annotations

import pytest

from pipeline.evaluation.diversity import Diversity, diversity
from pipeline.evaluation.table import DIVERSITY_COLUMNS, diversity_cells, format_table


def test_figures_counted_by_hand():
    captions = ["a dog runs", "a dog runs", "a cat runs fast", "dog"]
    training = ["A dog runs.", "a bird sings"]  # the first is "a dog runs" once tokenised
    # words: 3 + 3 + 4 + 1 = 11; unigrams {a, dog, runs, cat, fast} = 5
    # bigrams within captions: (a dog) (dog runs) (a cat) (cat runs) (runs fast) = 5; none across captions
    assert diversity(captions, training) == Diversity(
        captions=4, distinct=3, distinct_share=0.75, vocabulary=5, div_1=5 / 11, div_2=5 / 11, novel_share=0.5,
        repeated_2grams=0.0)  # 7 bigrams, none repeated within its caption


def test_repeated_bigrams_show_a_caption_caught_in_a_loop():
    looped = diversity(["a man in a red shirt and a man in a hat", "a a a a"], [])
    # first caption: 11 bigrams, (a man) (man in) (in a) twice: 3 repeats; second: 3 bigrams (a a), 2 repeats
    assert looped.repeated_2grams == pytest.approx((3 + 2) / (11 + 3))


def test_tokenisation_is_the_vocabulary_s():
    figures = diversity(["Two dogs, playing!", "two dogs playing"], ["two dogs playing"])
    assert (figures.distinct, figures.vocabulary, figures.novel_share) == (1, 3, 0.0)
    assert figures.div_2 == pytest.approx(2 / 6)  # (two dogs) (dogs playing) over six words


def test_no_words_and_no_captions_are_zeros_not_errors():
    assert diversity(["", ""], []) == Diversity(2, 1, 0.5, 0, 0.0, 0.0, 1.0, 0.0)
    assert diversity([], ["a dog"]) == Diversity(0, 0, 0.0, 0, 0.0, 0.0, 0.0, 0.0)


def test_table_cells_and_old_reports():
    cells = diversity_cells(diversity(["a dog", "a cat"], ["a dog"]).to_dict())
    assert cells == {"distinct": 1.0, "vocab": 3, "Div-1": 0.75, "Div-2": 0.5, "novel": 0.5, "rep-2": 0.0}
    assert set(diversity_cells(None).values()) == {None}  # written before eval measured diversity
    table = format_table({"run": cells}, DIVERSITY_COLUMNS)
    assert table.splitlines()[0].split() == ["model", *DIVERSITY_COLUMNS] and "0.750" in table


def test_novelty_compares_in_the_models_tokenizer_style():
    from pipeline.evaluation.diversity import diversity as figures
    training = ["A man's dog runs."]
    assert figures(["a man 's dog runs"], training, "ptb").novel_share == 0.0  # what a ptb model writes
    assert figures(["a mans dog runs"], training).novel_share == 0.0  # what a karpathy model writes
    assert figures(["a man 's dog runs"], training).novel_share == 1.0  # the styles must not be mixed
