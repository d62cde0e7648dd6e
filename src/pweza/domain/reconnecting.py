"""How soon an agent is back on a manager that went away, and how long the manager waits for it.

Both ends need the figures: the agent backs off between reconnects up to the first, and a
restarted manager keeps the leases it read back from the store at least the second, so an agent
still running (or holding the result of) an attempt has time to come back and claim it.
"""

from __future__ import annotations

from typing import Final

# A run resumes within about this long of its manager being back (plus the agent's jitter of a
# quarter). A refused connection costs next to nothing, so even a large fleet may try this often.
AGENT_RECONNECT_MAX_SECONDS: Final = 0.5
# Ten reconnect rounds, so an agent on a busy machine still makes it.
RECOVERED_LEASE_MIN_SECONDS: Final = 10 * AGENT_RECONNECT_MAX_SECONDS
