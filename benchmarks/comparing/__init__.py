"""The parts of benchmarks/compare.py, by job: ``systems`` (who is compared, on what, and what
each guarantees), ``peers_venv`` and ``services`` (the peers' virtualenv, Redis and the Prefect
server), ``running`` (one system's turn, its figures recorded), ``analysis`` (medians and where
pweza is behind), ``profiles`` (py-spy where it is) and ``report`` (benchmarks.md and the JSON)."""
