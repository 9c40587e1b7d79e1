"""Using trained runs on new images (tagging; captioning lives in pipeline/decoding/new_images.py)."""
