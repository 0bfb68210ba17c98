"""GitHub as the harness plays it: recorded state, tokens, environments, stand-ins."""
