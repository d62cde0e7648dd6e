"""The local model's speed: how long the agent loop's calls take on SmolLM2-135M (llama.cpp, CPU).

Starts `pweza.testing.LocalModel` (install it with `make model`) and, `--repeat` times each,
runs through the agent loop at temperature 0: a short chat (max 30 tokens), a tool call round
trip (a stand-in weather tool, two model calls), and a structured answer (a JSON schema). Reports
seconds per case (median, min, max), the tokens the model reported and completion tokens per
second of model time. JSON on stdout; the figures are this machine's, for sizing test timeouts.

    python benchmarks/local_model.py [--repeat 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import statistics
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pweza.agent.chat import ChatClient, Endpoint
from pweza.agent.model_loop import AgentLoop, LoopSettings
from pweza.agent.tooling import ToolOutcome, Tools, ToolSpec
from pweza.testing.local_model import LocalModel

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}, "sunny": {"type": "boolean"}},
    "required": ["city", "sunny"],
}


class WeatherTool:
    async def list_tools(self) -> Sequence[ToolSpec]:
        schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        return [ToolSpec("get_weather", "The current weather in a city", schema)]

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        return ToolOutcome(f"sunny, 21 C in {arguments.get('city')}")

    async def aclose(self) -> None:
        return None


CASES: dict[str, tuple[str, LoopSettings, bool]] = {
    "chat": ("Say hello in one sentence.", LoopSettings(max_tokens=30, temperature=0), False),
    "tool_round_trip": (
        "What is the weather in Paris?",
        LoopSettings(system_prompt="Use the tools.", max_turns=2, max_tokens=48, temperature=0),
        True,
    ),
    "structured": ("Paris is sunny. Describe it as JSON.", LoopSettings(max_tokens=40, output_schema=SCHEMA), False),
}


async def measure(model: LocalModel, repeat: int) -> dict[str, Any]:
    client = ChatClient([Endpoint(name="local", base_url=model.base_url, model=model.model, temperature=0)])
    results: dict[str, Any] = {}
    try:
        for case, (prompt, settings, with_tools) in CASES.items():
            seconds, completion, prompt_tokens, model_seconds = [], 0, 0, 0.0
            for _ in range(repeat):
                tools: Tools | None = WeatherTool() if with_tools else None
                started = time.perf_counter()
                output = await AgentLoop(client, tools, settings).run(prompt)
                seconds.append(time.perf_counter() - started)
                completion += output["usage"]["completionTokens"]
                prompt_tokens += output["usage"]["promptTokens"]
                model_seconds += sum(c["seconds"] for c in output["calls"] if c["kind"] == "model")
            results[case] = {
                "seconds_median": round(statistics.median(seconds), 3),
                "seconds_min": round(min(seconds), 3),
                "seconds_max": round(max(seconds), 3),
                "prompt_tokens_per_run": prompt_tokens / repeat,
                "completion_tokens_per_run": completion / repeat,
                "completion_tokens_per_model_second": round(completion / model_seconds, 1) if model_seconds else None,
            }
    finally:
        await client.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with LocalModel(threads=args.threads) as model:
        cases = asyncio.run(measure(model, args.repeat))
    report = {
        "benchmark": "local_model",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"machine": host.machine(), "cpus": os.cpu_count(), "python": host.python_version()},
        "model": "SmolLM2-135M-Instruct Q4_1 on xllamacpp 0.2.7",
        "threads": args.threads,
        "repeat": args.repeat,
        "cases": cases,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
