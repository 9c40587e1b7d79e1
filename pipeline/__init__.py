"""capcache: image captioning from a reusable cache of frozen-backbone features."""
