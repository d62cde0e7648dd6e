"""The HTTP transport: REST under /api/v1, health, OpenAPI."""
