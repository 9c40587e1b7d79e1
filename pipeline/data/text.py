"""Caption tokenisation, done the same way for every dataset format.

Follows Karpathy's neuraltalk preprocessing, which the published Flickr8k/30k/COCO splits and most
captioning repos use: lower-case, delete ASCII punctuation (so "tri-colored" -> "tricolored"),
split on white space. Keeping to it makes vocabularies and scores comparable with the literature.
"""

from __future__ import annotations

import string

_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)


def tokenize(caption: str) -> list[str]:
    return caption.lower().translate(_DELETE_PUNCTUATION).split()
