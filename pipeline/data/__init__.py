"""Data in: manifests, importers for the common caption formats, text processing, the demo set."""
