"""The child process LocalModel starts: llama.cpp's HTTP server (xllamacpp) serving SmolLM2.

Run as `python -m pweza.testing.local_model_server MODEL.gguf PORT THREADS CONTEXT` with the
model cache on PYTHONPATH. xllamacpp's `Server(params)` loads the model and returns once it
listens (serving from its own threads); this process then waits for SIGTERM.
"""

from __future__ import annotations

import signal
import sys

MODEL_ALIAS = "smollm2"


def main(argv: list[str]) -> None:
    import xllamacpp  # type: ignore[import-not-found]  # in the model cache, not a dependency

    model, port, threads, context = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.model_alias = MODEL_ALIAS
    params.hostname = "127.0.0.1"
    params.port = port
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.n_parallel = 1
    params.n_ctx = context
    params.warmup = False
    # Signals are waited for below; blocked first so none arrives before sigwait.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    server = xllamacpp.Server(params)
    print(f"listening on {server.listening_address}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    main(sys.argv)
