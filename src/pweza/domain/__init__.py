"""Models, state machines and rules; no I/O happens in this layer.

Importing the package imports nothing else (pweza.domain.kinds brings in every kind), so a
command that needs one small module does not pay for the models and CEL.
"""
