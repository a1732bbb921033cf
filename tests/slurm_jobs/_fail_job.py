"""A job for tests/test_slurm.py whose script fails."""

raise SystemExit("the training data is missing: /nowhere/train.parquet")
