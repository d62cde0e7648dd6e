"""Chat completions against OpenAI-compatible endpoints: fallbacks, limits, streaming, tool calls.

`ChatClient` holds one model's endpoint and its fallbacks (from ModelConfigs, `endpoints_from`)
and sends a chat to the first that answers; `Limiter` keeps each endpoint within its concurrency
and rate limit.
"""

from __future__ import annotations

from pweza.agent.chat.client import ChatChunk, ChatClient, ChatResult, ModelError, Usage
from pweza.agent.chat.endpoints import Endpoint, endpoints_from
from pweza.agent.chat.limits import Limiter

__all__ = ["ChatChunk", "ChatClient", "ChatResult", "Endpoint", "Limiter", "ModelError", "Usage", "endpoints_from"]
