"""Entry points: the `pweza` command line."""
