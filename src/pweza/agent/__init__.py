"""The agent runtime: the worker process that executes tasks, and the SDK its handlers use."""

from pweza.agent.sdk import Delegator, TaskCancelled, TaskContext, TaskFailure

__all__ = ["Delegator", "TaskCancelled", "TaskContext", "TaskFailure"]
