"""What happens after an attempt fails: the retry policy's decision."""

from __future__ import annotations

from dataclasses import dataclass

from pweza.domain.durations import parse_duration
from pweza.domain.manifests import RetryPolicy
from pweza.domain.tasks import ErrorType, TaskError, TaskState


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    final_state: TaskState = TaskState.FAILED


def backoff_delay(policy: RetryPolicy, failed_attempts: int) -> float:
    """Exponential backoff: backoff * factor^(n-1), capped at maxBackoff."""
    base = parse_duration(policy.backoff)
    cap = parse_duration(policy.max_backoff)
    return float(min(cap, base * policy.factor ** max(0, failed_attempts - 1)))


def decide(policy: RetryPolicy, error: TaskError, attempts_made: int, max_retries: int | None = None) -> RetryDecision:
    """Retry while the error is retryable, not listed as non-retryable, and retries remain."""
    final = TaskState.TIMED_OUT if error.type == ErrorType.TIMEOUT else TaskState.FAILED
    if error.type == ErrorType.CANCELLED:
        return RetryDecision(retry=False, final_state=TaskState.CANCELLED)
    limit = policy.limit if max_retries is None else max_retries
    if not error.retryable or error.type in policy.non_retryable or attempts_made > limit:
        return RetryDecision(retry=False, final_state=final)
    return RetryDecision(retry=True, delay=backoff_delay(policy, attempts_made), final_state=final)
