"""Persistence: the Store protocol, its backends and migrations."""
