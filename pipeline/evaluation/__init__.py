"""Caption evaluation: pycocoevalcap's metrics (scorers), agreement with human judgements
(agreement), whole-run evaluation (evaluate_run) and score tables (table)."""
