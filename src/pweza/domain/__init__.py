"""Models, state machines and rules; no I/O happens in this layer."""
