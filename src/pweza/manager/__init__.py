"""The service layer: dispatcher, leases, registry, auth and metrics."""
