"""The BentoML service and the GitOps deployment state."""
