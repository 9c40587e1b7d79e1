"""Trained runs applied to images: captions and labels for new image files (caption_images,
tag_images, both through extract/new_files.py), and a tagger's outputs over cached images
(tag_cached, on labelled_images)."""
