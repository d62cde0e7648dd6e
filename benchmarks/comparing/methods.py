"""The "How it was measured" part of docs/benchmarks.md: what each system's turn did, in words."""

from __future__ import annotations

from typing import Any

from comparing.running import Results


def methods(data: dict[str, Any], results: Results) -> list[str]:
    machine = data["machine"]
    redis = results.notes.get("celery", {}).get("redis")
    return [
        f"- Command: `{data['command']}` from the repository root (`make bench` runs "
        "`.venv/bin/python benchmarks/compare.py`, with no arguments).",
        f"- Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB, Linux "
        f"{machine['kernel']}, Python {machine['python']}. The machine was shared with other work: load average "
        f"{machine['load_start']} at the start, {machine['load_end']} at the end (1, 5, 15 min), so the spread in "
        "brackets is mostly that.",
        "- Versions: "
        + ", ".join(f"{s} {v}" for s, v in results.versions.items())
        + (f", Redis {redis}" if redis else "")
        + ". Peers installed with pip into their own virtualenvs (Celery, Ray and Prefect in one; DBOS, LangGraph "
        "and Temporal each in its own), pinned (benchmarks/comparing/systems.py `PINS`).",
        "- Stores: SQLite as pweza runs it (WAL, `synchronous=NORMAL`) for every peer that keeps its state in "
        "SQLite, and the `-shipped` variants as the peer ships it (the store column of the medians says which); "
        "PostgreSQL (Debian's, on loopback, one server for the run, a fresh database per turn) with `fsync=on`, "
        "`full_page_writes=on`, `synchronous_commit=on` for everyone on it.",
        "- Same handler work everywhere (benchmarks/peers/work.py): the no-op returns the time it started; a "
        "chain step returns its input + 1 (after 10 ms of `time.sleep` in the 10 ms variant), so a chain must "
        "return 40; a fan-out element returns i + 1 and the gather must sum to 500,500.",
        f"- Throughput: {data['tasks']:,} tasks submitted as fast as the client can (pweza: batches of 1,000 "
        "through `POST /api/v1/tasks:batch`; Celery: one `group`; Ray: a list of `.remote()`; DBOS: one "
        "workflow of one step per task, `DBOS.start_workflow` in-process or `enqueue` on the queue; Temporal: "
        "one workflow of one activity per task, started 500 at a time), clock stopped when the client knows all "
        "have succeeded (pweza: its succeeded-tasks counter, polled every 50 ms; Celery: `join_native`, polling "
        "every 50 ms; Ray: `ray.get`; DBOS: each handle's result, polled every 10 ms; Temporal: each workflow's "
        "result), after a 500-task warm-up.",
        f"- Submit-to-start latency: {data['latency_samples']} tasks submitted one at a time, one every "
        f"{data['latency_interval'] * 1000:g} ms (below every system's throughput here, so no queue builds up); "
        "per task, the time the handler started (its own `time.time()`) minus the client's `time.time()` just "
        "before submitting. For pweza the submit includes the durable commit the API waits for before it "
        "answers; for DBOS the workflow's status row is committed before `start_workflow`/`enqueue` returns; "
        "for Temporal the server commits the workflow's start before it answers.",
        "- Chains: the client's wall time from submitting the run to holding its result, divided by 40 "
        "(minus 10 ms for the 10 ms variant), after a warm-up run. pweza: a Workflow whose steps depend on "
        "the previous one and take its output; Celery: `chain`; Ray: each step's ObjectRef passed to the "
        "next; Prefect: 40 task calls in one flow; DBOS in-process: one workflow of 40 steps; DBOS queue: one "
        "workflow enqueueing each step as a workflow and waiting for it; LangGraph: a graph of 40 nodes in a row; "
        "Temporal: one workflow of 40 activities in a row.",
        "- Fan-out: pweza `foreach` over 1,000 items, Celery `chord` with a summing callback, Ray 1,000 "
        "`.remote()` and `ray.get`, Prefect `task.map` and `.result()`, DBOS one workflow starting (or enqueueing) "
        "1,000 child workflows and gathering their results, LangGraph 1,000 `Send`s to one node and an "
        "`operator.add` reducer, Temporal one workflow running 1,000 activities at once.",
        "- Services on loopback: Redis (`--save ''`, no AOF) for the whole run; a Prefect server (SQLite) "
        "started for each Prefect turn and stopped after it, since it works off its event backlog for minutes "
        "after a fan-out; PostgreSQL for the whole run (DBOS on PostgreSQL); a Temporal server (built by "
        "hack/build-temporal.sh, config written by benchmarks/peers/temporal_bench.py, namespace registered "
        "through the SDK) started for each Temporal turn. After each turn the run waits (60 s at most) until "
        "Redis is idle again. Server start-up is never counted.",
        f"- Recovery ran {data['recovery_repetitions']} time(s) per system, as the last scenario of the first "
        "repetition(s); the process killed is the one that coordinates the run (the recovery table says which).",
        *DURABLE_PEERS,
    ]


DURABLE_PEERS = [
    "- `pweza-postgres`: pweza with one manager replica on the PostgreSQL server below "
    "(`pweza.testing.cluster.Cluster`), the same agents, scenarios and client.",
    "- The durable peers' variants: `dbos-sqlite` (in-process), `dbos-sqlite-queue` (work through a DBOS queue "
    "to 2 worker processes), `dbos-sqlite-shipped` (in-process, SQLite as DBOS ships it), `dbos-postgres` and "
    "`dbos-postgres-queue` (the same on PostgreSQL), `langgraph` and `langgraph-shipped` (chains, fan-out and "
    "recovery; no plain tasks), `temporal` and `temporal-shipped` (the server's SQLite tuned or as its "
    "development config ships it). DBOS polls its queue and its handles every 10 ms (its defaults are 1 s); "
    'LangGraph checkpoints with `durability="sync"`; Temporal\'s activities have a 10 s start-to-close timeout.',
    "- The Temporal server: `hack/build-temporal.sh` builds `go.temporal.io/server/cmd/server` v1.32.1 from the Go "
    "module proxy (pure-Go SQLite store) into `~/.cache/pweza/temporal-v1.32.1/`, once (cold: tens of minutes, "
    "niced, one core); `make bench` runs it, `make test` never does. The `temporal` CLI's dev server cannot be "
    "built from the module proxy (its go.mod replaces `cliext` with a directory the proxy's zip lacks), and "
    "server v1.32.2 needs Go 1.26.10 (1.26.8 here). Each Temporal turn writes a development config (one SQLite "
    "file, 1 history shard, archival off, loopback ports), starts the server with `--allow-no-auth`, and "
    "registers the `default` namespace through the SDK's workflow service (the server binary creates none).",
    "- A quick run, e.g. to see that a peer works: `.venv/bin/python benchmarks/compare.py --systems "
    "dbos-sqlite,langgraph --rounds 1 --no-profile` (`--scenarios chain-noop fan-out` for fewer scenarios; "
    "`--tasks 500 --fan 200 --latency-samples 50` for smaller ones; `--out /tmp/x --docs /tmp/x` to leave "
    "docs/ alone).",
]
