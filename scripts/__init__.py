"""Glue the GitHub workflows call; every script also runs on a laptop."""
