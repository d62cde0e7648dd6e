"""LangGraph's side of benchmarks/compare.py (run with its own virtualenv).

LangGraph is a library: a graph runs in this process and its checkpointer (`SqliteSaver`,
one SQLite file) records the state after every super-step. `durability="sync"`: each
checkpoint is committed before the next step starts (LangGraph's default, "async", writes it
while the next step runs). A chain is a graph of 40 nodes in a row, each running `work.step`
on the state's value; a fan-out is one `Send` per item to an `item` node (LangGraph runs the
sends of a super-step on its thread pool), gathered by an `operator.add` reducer. No no-op
task scenario: LangGraph has no tasks to submit apart from graphs.

`--sqlite tuned` adds `synchronous=NORMAL` to the WAL mode `SqliteSaver.setup()` sets itself,
as pweza's store runs; `--sqlite shipped` leaves SQLite's `synchronous=FULL`. Recovery: the
process running the chain is SIGKILLed after 20 steps and started again; it resumes the same
thread from its last checkpoint (`graph.invoke(None, config)`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import operator
import sqlite3
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

import common
import work
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send


class Chain(TypedDict):
    v: int
    ms: float
    log: str | None


class Fan(TypedDict):
    n: int
    results: Annotated[list[int], operator.add]


def link(state: Chain) -> dict[str, int]:
    return {"v": work.step(state["v"], state["ms"], state["log"])}


def spread(state: Fan) -> list[Send]:
    return [Send("item", {"i": i}) for i in range(state["n"])]


def item(state: dict[str, int]) -> dict[str, list[int]]:
    return {"results": [work.item(state["i"])]}


def saver(path: Path, tuned: bool) -> SqliteSaver:
    connection = sqlite3.connect(path, check_same_thread=False)
    checkpointer = SqliteSaver(connection)
    checkpointer.setup()  # creates the tables and sets WAL
    if tuned:
        connection.execute("PRAGMA synchronous=NORMAL")
    return checkpointer


def chain_graph(n: int, checkpointer: SqliteSaver) -> Any:
    graph = StateGraph(Chain)
    for i in range(n):
        graph.add_node(f"s{i}", link)
        graph.add_edge(START if i == 0 else f"s{i - 1}", f"s{i}")
    graph.add_edge(f"s{n - 1}", END)
    return graph.compile(checkpointer=checkpointer)


def fan_graph(checkpointer: SqliteSaver) -> Any:
    graph = StateGraph(Fan)
    graph.add_node("item", item)
    graph.add_conditional_edges(START, spread, ["item"])
    graph.add_edge("item", END)
    return graph.compile(checkpointer=checkpointer)


def thread(key: str, steps: int) -> dict[str, Any]:
    return {"configurable": {"thread_id": key}, "recursion_limit": steps + 10}


class Bench:
    def __init__(self, args: argparse.Namespace, report: common.Report) -> None:
        self.args = args
        self.report = report
        self.store = args.workdir / "langgraph.sqlite"
        self.chains: dict[int, Any] = {}

    def start(self) -> None:
        self.checkpointer = saver(self.store, self.args.sqlite == "tuned")
        self.fan_graph = fan_graph(self.checkpointer)

    def stop(self) -> None:
        pass  # nothing runs outside this process

    def chain(self, n: int, ms: float) -> int:
        graph = self.chains.setdefault(n, chain_graph(n, self.checkpointer))
        out = graph.invoke({"v": 0, "ms": ms, "log": None}, thread(uuid.uuid4().hex, n), durability="sync")
        return int(out["v"])

    def fan(self, n: int) -> int:
        out = self.fan_graph.invoke({"n": n, "results": []}, thread(uuid.uuid4().hex, 2), durability="sync")
        return sum(out["results"])

    def recovery(self) -> None:
        log = self.args.workdir / "recovery.log"
        driver = [sys.executable, __file__, "--driver", str(self.store), uuid.uuid4().hex, str(log), self.args.sqlite]
        common.measure_driver_recovery(self.report, log, driver, self.args.workdir / "driver.log")
        self.report.notes["recovery"] = (
            "the process running the graph SIGKILLed after 20 of 40 steps and started again: it resumed the "
            "same thread from its last checkpoint (`invoke(None, config)`)"
        )


def drive(argv: list[str]) -> None:
    store, key, log, sqlite = argv[argv.index("--driver") + 1 :][:4]
    graph = chain_graph(common.RECOVERY_CHAIN, saver(Path(store), sqlite == "tuned"))
    given = None if "--resume" in argv else {"v": 0, "ms": 10, "log": log}
    out = graph.invoke(given, thread(key, common.RECOVERY_CHAIN), durability="sync")
    sys.exit(0 if out["v"] == common.RECOVERY_CHAIN else 1)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sqlite", choices=["tuned", "shipped"], default="tuned")


def main() -> None:
    if "--driver" in sys.argv:
        drive(sys.argv)
        return
    args = common.arguments(__doc__.split("\n")[0], options)
    args.workdir.mkdir(parents=True, exist_ok=True)
    report = common.Report("langgraph", importlib.metadata.version("langgraph"))
    report.notes["store"] = f"SqliteSaver {importlib.metadata.version('langgraph-checkpoint-sqlite')}, {args.sqlite}"
    if common.NOOP in args.scenarios:
        report.notes[common.NOOP] = "not run: LangGraph runs graphs in-process, it has no tasks to submit"
    common.run_durable(report, args, Bench(args, report), tasks=False)


if __name__ == "__main__":
    main()
