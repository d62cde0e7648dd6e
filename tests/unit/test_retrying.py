from __future__ import annotations

from pweza.domain.manifests import RetryPolicy
from pweza.domain.retrying import backoff_delay, decide
from pweza.domain.tasks import ErrorType, TaskError, TaskState


def test_backoff_grows_by_factor_and_is_capped() -> None:
    policy = RetryPolicy(backoff="1s", factor=2, max_backoff="5s")
    assert [backoff_delay(policy, n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]


def test_retryable_error_retries_until_the_limit() -> None:
    policy = RetryPolicy(limit=2, backoff="100ms")
    error = TaskError("Boom", "x", retryable=True)
    assert decide(policy, error, attempts_made=1).retry
    assert decide(policy, error, attempts_made=2).retry
    final = decide(policy, error, attempts_made=3)
    assert not final.retry and final.final_state is TaskState.FAILED


def test_non_retryable_types_and_flags_stop_at_once() -> None:
    policy = RetryPolicy(limit=5, non_retryable=["BadInput"])
    assert not decide(policy, TaskError("BadInput", "x"), 1).retry
    assert not decide(policy, TaskError("Other", "x", retryable=False), 1).retry


def test_timeouts_end_as_timed_out_and_cancellation_as_cancelled() -> None:
    policy = RetryPolicy(limit=0)
    assert decide(policy, TaskError(ErrorType.TIMEOUT, "slow"), 1).final_state is TaskState.TIMED_OUT
    assert decide(policy, TaskError(ErrorType.CANCELLED, "stop"), 1).final_state is TaskState.CANCELLED


def test_per_task_max_retries_overrides_the_policy() -> None:
    policy = RetryPolicy(limit=5)
    assert not decide(policy, TaskError("E", "x"), attempts_made=1, max_retries=0).retry
