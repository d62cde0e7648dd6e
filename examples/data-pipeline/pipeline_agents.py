"""Agents for the data-pipeline example: extract, a flaky transform, enrich, check, load.

Everything is simulated and deterministic: sources generate the same rows every run
(seeded from their name), and the transform fails on its first two attempts on purpose
(keyed on `ctx.attempt`) to show step retries. No network, no model; a real pipeline
would read from databases and buckets here, and could use an `llm` runtime template for
fuzzy steps such as categorising free-text fields.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import Counter
from typing import Any

from pweza.agent.sdk import TaskCancelled

COUNTRIES = ["DE", "FR", "SE", "GB", "US", "KE", "BR", "JP"]
CURRENCY = {"DE": "EUR", "FR": "EUR", "SE": "SEK", "GB": "GBP", "US": "USD", "KE": "KES", "BR": "BRL", "JP": "JPY"}
REGION = {
    "DE": "EMEA",
    "FR": "EMEA",
    "SE": "EMEA",
    "GB": "EMEA",
    "KE": "EMEA",
    "US": "AMER",
    "BR": "AMER",
    "JP": "APAC",
}
# Fixed rates so the totals are reproducible; a real enricher would look up the day's rates.
EUR_PER_UNIT = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "SEK": 0.087, "KES": 0.0071, "BRL": 0.17, "JPY": 0.0061}
FLAKY_ATTEMPTS = 2  # the transform fails this many times before it succeeds


def _rng(name: str) -> random.Random:
    # Seeded from a stable hash (not hash(), which changes per process), so every run agrees.
    return random.Random(int(hashlib.sha256(name.encode()).hexdigest()[:16], 16))


def extract(ctx: Any) -> dict[str, Any]:
    """One source -> its rows, with the usual dirt: duplicates, missing amounts, odd casing."""
    source = ctx.input["source"]
    name: str = source["name"]
    count = int(source.get("rows", 20))
    rng = _rng(name)
    rows: list[dict[str, Any]] = []
    for n in range(1, count + 1):
        country = rng.choice(COUNTRIES)
        row = {
            "id": f"{name}-{n:04d}",
            "source": name,
            "customer": f"C-{rng.randint(1, 60):03d}",
            "country": country,
            "currency": CURRENCY[country],
            "amount": round(rng.uniform(5, 900), 2),
            "day": f"2024-06-{rng.randint(1, 30):02d}",
        }
        if n % 11 == 0:
            row["amount"] = None  # a row the source system never filled in
        if n % 7 == 0:
            row["currency"] = row["currency"].lower()  # a client that sends lower case
        rows.append(row)
        if n % 9 == 0:
            rows.append(dict(row))  # the source delivered this row twice
    return {"source": name, "system": source.get("system", "unknown"), "rows": rows}


def transform(ctx: Any) -> dict[str, Any]:
    """All batches -> one clean table: deduplicated, invalid rows dropped, currencies normalised.

    Deliberately flaky: attempts 1 and 2 raise (as if the staging warehouse were briefly
    down); the step's retry policy runs it again and attempt 3 succeeds.
    """
    if ctx.attempt <= FLAKY_ATTEMPTS:
        ctx.logger.warning("staging warehouse unavailable (simulated)", attempt=ctx.attempt)
        raise ConnectionError(f"staging warehouse unavailable (simulated failure on attempt {ctx.attempt})")
    seen: set[str] = set()
    clean: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for batch in ctx.input["batches"]:
        for row in batch["rows"]:
            if row["id"] in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(row["id"])
            if row.get("amount") is None or row["amount"] <= 0:
                dropped["missing_amount"] += 1
                continue
            clean.append({**row, "currency": row["currency"].upper()})
    return {"rows": clean, "dropped": dict(dropped), "attempt": ctx.attempt}


async def enrich(ctx: Any) -> dict[str, Any]:
    """Add the region, the amount in EUR and a size segment to every row."""
    await asyncio.sleep(0.3)  # a reference-data lookup; well inside the step's 5s timeout
    rows = []
    for row in ctx.input["rows"]:
        eur = round(row["amount"] * EUR_PER_UNIT[row["currency"]], 2)
        segment = "large" if eur >= 500 else "medium" if eur >= 100 else "small"
        rows.append({**row, "region": REGION[row["country"]], "amountEur": eur, "segment": segment})
    return {"rows": rows, "byRegion": dict(sorted(Counter(r["region"] for r in rows).items()))}


async def quality_check(ctx: Any) -> dict[str, Any]:
    """Quick checks at once, then a slow "full scan" that the step's timeout usually cuts short.

    The scan waits on `ctx.cancelled`, so when the timeout fires it stops at once instead of
    being killed after the grace period.
    """
    rows: list[dict[str, Any]] = ctx.input["rows"]
    scan_seconds = float(ctx.input.get("scanSeconds", 3))
    checks = {
        "rows": len(rows),
        "unique_ids": len({r["id"] for r in rows}) == len(rows),
        "no_missing_amounts": all(r["amount"] is not None for r in rows),
    }
    try:
        await asyncio.wait_for(ctx.cancelled.wait(), timeout=scan_seconds)
    except TimeoutError:
        return {"passed": all(v for k, v in checks.items() if k != "rows"), "checks": checks, "fullScan": True}
    ctx.logger.info("quality scan stopped early", reason=ctx.cancel_reason, checked=checks)
    raise TaskCancelled(ctx.cancel_reason or "quality scan cancelled")


def load(ctx: Any) -> dict[str, Any]:
    """Write the rows (simulated) and report what was loaded, per source.

    A real loader would upsert by row id in one transaction, keyed on the run, so a retried
    attempt never loads a batch twice.
    """
    rows: list[dict[str, Any]] = ctx.input["rows"]
    quality = ctx.input.get("quality", "unknown")
    per_source = dict(sorted(Counter(r["source"] for r in rows).items()))
    return {
        "table": "analytics.orders_clean",
        "batch": f"batch-{ctx.labels.get('run', 'local')}",
        "rows": len(rows),
        "perSource": per_source,
        "totalEur": round(sum(r["amountEur"] for r in rows), 2),
        "quality": quality if quality == "succeeded" else f"unverified ({quality})",
    }
