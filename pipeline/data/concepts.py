"""Visual-concept labels from reference captions (Fang et al. 2015, "From captions to visual concepts").

A word is a label of an image when at least ``min_captions`` of the image's captions use it: one
annotator's passing word ("a dog near a *fence*") is noise, two annotators naming it independently
is evidence it is in the picture. The class list is the ``top`` words that label the most *train*
images, so val and test never influence which classes exist. Function words are never classes;
with a part-of-speech list (``nouns``: one word per line, WordNet's ``index.noun`` works as is)
only nouns are, as in Fang et al.; without one (nothing of the kind ships offline with Python),
verbs, colours and counts can be classes too, which is what the captions talk about anyway.

Noisy tags (seed 004's second modality, NUS-WIDE's user tags) can come from the captions too:
``tags_from_caption=i`` holds out each image's i-th caption as its tags (the words one person
wrote, like a photographer's tags: incomplete and sometimes off) and derives the labels from the
other captions only, so a tag never counts towards the label it predicts.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.data.labels import ImageLabels, LabelSet
from pipeline.data.manifest import ImageRecord, Manifest
from pipeline.data.text import tokenizer
from pipeline.errors import CapcacheError, DataError

# Articles, pronouns, prepositions, conjunctions, auxiliaries and fillers of English captions:
# words that describe no visual concept.
STOP_WORDS = frozenset("""
a an the this that these those there here it its it's they them their theirs he him his she her hers
we us our you your i me my one ones some any each other another such own
is are was were be been being am has have had having do does did doing can could will would shall should
may might must
of in on at to for from by with without into onto over under above below between behind beside besides
near through across along around about against toward towards upon off out up down inside outside
within while during before after until till since
and or but nor so yet as than then too very just also not no only both either neither
what which who whom whose when where why how all more most much many few several lot lots
front top side next back middle edge end part kind something someone somebody thing things
""".split())


def concepts_from_captions(manifest: Manifest, top: int = 80, min_captions: int = 2, nouns: set[str] | None = None,
                           style: str = "karpathy", tags_from_caption: int | None = None,
                           tag_vocab: int = 1000) -> LabelSet:
    """The labels section for ``manifest``: ``top`` concept classes, per image the ones that at
    least ``min_captions`` of its captions use, and with ``tags_from_caption`` noisy tags."""
    if top < 1 or min_captions < 1:
        raise CapcacheError(f"--top and --min-captions must be at least 1 (got {top}, {min_captions})")
    split = tokenizer(style)
    allowed = (lambda w: w not in STOP_WORDS and w in nouns) if nouns is not None else (lambda w: w not in STOP_WORDS)
    words = {r.image_id: _caption_words(r, split, tags_from_caption) for r in manifest.images}
    candidates = {i: _confirmed(sets, min_captions, allowed) for i, (sets, _) in words.items()}
    train = [r.image_id for r in manifest.images if r.split in ("train", "restval")]
    if not train:
        raise DataError("the manifest has no train images; the classes are chosen from train captions", manifest.name)
    counts = Counter(w for i in train for w in candidates[i])
    classes = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    if not classes:
        raise DataError(f"no word is used by {min_captions} captions of any train image; lower --min-captions",
                        manifest.name)
    tags = _tag_vocabulary(words, train, allowed, tag_vocab) if tags_from_caption is not None else []
    class_at, tag_at = {w: j for j, w in enumerate(classes)}, {w: j for j, w in enumerate(tags)}
    images = {i: ImageLabels(sorted(candidates[i] & class_at.keys(), key=class_at.get),
                             sorted(held & tag_at.keys(), key=tag_at.get))
              for i, (_, held) in words.items()}
    source = {"from": "captions", "top": top, "min_captions": min_captions, "tokenizer": style,
              "parts_of_speech": "nouns list" if nouns is not None else "stop-word list",
              **({"tags_from_caption": tags_from_caption, "tag_vocab": tag_vocab} if tags else {})}
    return LabelSet(classes, images, tags, source)


def load_nouns(path: str | Path) -> set[str]:
    """Nouns, one per line (the first field; WordNet's index.noun works, its licence header skipped)."""
    p = Path(path)
    if not p.is_file():
        raise DataError("nouns list not found; pass a file with one noun per line", p)
    nouns = {line.split()[0].lower() for line in p.read_text(encoding="utf-8", errors="replace").splitlines()
             if line.strip() and not line.startswith(" ")}
    if not nouns:
        raise DataError("nouns list is empty", p)
    return nouns


def _caption_words(record: ImageRecord, split, held_out: int | None) -> tuple[list[set[str]], set[str]]:
    """(the word set of each caption that labels count on, the held-out caption's words as tags)."""
    sets = [set(split(c)) for c in record.captions]
    if held_out is None:
        return sets, set()
    if not 0 <= held_out < len(sets):
        return sets, set()  # an image with fewer captions has no tags (an image without user tags)
    return sets[:held_out] + sets[held_out + 1:], sets[held_out]


def _confirmed(word_sets: list[set[str]], min_captions: int, allowed) -> set[str]:
    used = Counter(w for words in word_sets for w in words)
    return {w for w, n in used.items() if n >= min_captions and allowed(w)}


def _tag_vocabulary(words: dict[str, tuple[list[set[str]], set[str]]], train: list[str], allowed, size: int) -> list[str]:
    counts = Counter(w for i in train for w in words[i][1] if allowed(w))
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]
