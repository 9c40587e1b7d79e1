"""Multi-label tagging evaluation: C/O precision, recall, F1, H-F1 (metrics); probabilities to labels (indicators)."""
