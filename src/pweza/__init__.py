"""pweza-core: a control plane for fleets of AI agents."""

__version__ = "0.1.0"
__all__ = ["__version__"]
