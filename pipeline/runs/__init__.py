"""Run folders: their layout, checkpoints, metrics log, and loading a trained run back (captioning
or tagging). Training writes them; evaluation, reports, inference and the server read them."""
