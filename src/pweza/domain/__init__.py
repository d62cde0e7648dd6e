"""Models, state machines and rules; no I/O happens in this layer."""

from pweza.domain import workflows as _workflows  # noqa: F401 - registers the Workflow kind
