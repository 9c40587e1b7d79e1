"""The HDF5 feature cache: what makes two caches the same (key), how one is written, how it is read."""
