"""gitops-ml: the ML pipeline stages, each run as ``python -m pipeline.<stage>``."""
