"""Models, state machines and rules; no I/O happens in this layer.

Nothing is imported here on purpose: an agent loads only the few modules it uses (tasks,
limits, its template's model), not the workflow models and their expression engine. The
Workflow kind registers itself when `pweza.domain.kinds` is imported.
"""
