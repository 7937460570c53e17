"""Training services: ``jobs`` (training jobs) and ``retraining`` (retraining policies and their chains)."""
