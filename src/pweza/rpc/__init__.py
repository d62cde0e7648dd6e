"""The gRPC transport: the agent channel server and the client agents use."""
