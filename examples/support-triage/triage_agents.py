"""Agents for the support-triage example: classify, route, page, summarise, report.

The "AI" here is deliberately small, honest rule-based logic (keyword scores), so the
example runs offline and gives the same answer every time. In a real deployment the
classifier and the summary writer would be `llm` runtime templates (see agents.yaml)
and the rest of the workflow would not change.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import Counter
from typing import Any

from pweza.agent.sdk import TaskFailure

CATEGORIES = ("billing", "technical", "account", "other")

# Keyword -> weight, per category. Phrases match whole words, case-insensitively, with an
# optional plural "s" ("invoice" also matches "invoices").
KEYWORDS: dict[str, dict[str, int]] = {
    "billing": {
        "invoice": 2, "charged": 2, "refund": 3, "payment": 2, "billing": 2, "subscription": 2,
        "receipt": 2, "prorated": 2, "card": 1, "price": 1, "seat": 1,
    },
    "technical": {
        "error": 2, "500": 2, "crash": 3, "bug": 2, "api": 2, "timeout": 2, "time out": 2, "slow": 2,
        "webhook": 2, "outage": 3, "down": 1, "release": 1, "load": 1,
    },
    "account": {
        "password": 3, "log in": 2, "login": 2, "sign in": 2, "sso": 3, "2fa": 3, "locked": 2,
        "username": 2, "admin rights": 3, "account": 1, "permissions": 2,
    },
}  # fmt: skip

# Any of these makes a ticket urgent: an outage, a security problem, or data at risk.
URGENT_SIGNALS = (
    "urgent", "asap", "immediately", "outage", "is down", "down for all", "all users", "production",
    "security", "breach", "data loss", "cannot access", "can't access", "nobody on our team",
)  # fmt: skip

# Who is on call for each category this week (a real pager agent would ask PagerDuty/Opsgenie).
ON_CALL = {
    "technical": {"rota": "sre-primary", "who": "Amina Odhiambo"},
    "account": {"rota": "identity-security", "who": "Jonas Berg"},
    "billing": {"rota": "billing-lead", "who": "Priya Nair"},
    "other": {"rota": "support-duty-manager", "who": "Sam Okafor"},
}

# What the queue's owners should do first, by category and the most common theme.
FIRST_ACTIONS = {
    "billing": "check the payment provider for duplicate charges before issuing refunds",
    "technical": "correlate the reports with the last deploy and the error-rate dashboards",
    "account": "verify identity, then review recent sign-in activity on the affected accounts",
    "other": "reply with a friendly acknowledgement and tag the product team",
}


def _hits(text: str, phrases: dict[str, int] | tuple[str, ...]) -> list[str]:
    return [phrase for phrase in phrases if re.search(rf"(?<!\w){re.escape(phrase)}s?(?!\w)", text)]


def classify(ctx: Any) -> dict[str, Any]:
    """One ticket -> a category (the best keyword score) and an urgency."""
    ticket = ctx.input["ticket"]
    if not isinstance(ticket, dict) or not (ticket.get("subject") or ticket.get("body")):
        # Not retryable: the same malformed ticket would fail every attempt.
        message = f"a ticket needs a subject or a body, got {ticket!r}"[:200]
        raise TaskFailure(message, type="InvalidInput", retryable=False)
    text = f"{ticket.get('subject', '')}\n{ticket.get('body', '')}".lower()
    scores: dict[str, int] = {}
    matched: dict[str, list[str]] = {}
    for category, words in KEYWORDS.items():
        found = _hits(text, words)
        matched[category] = found
        scores[category] = sum(words[word] for word in found)
    best = max(KEYWORDS, key=lambda category: scores[category])  # ties: the first in KEYWORDS
    category = best if scores[best] > 0 else "other"
    total = sum(scores.values())
    urgent_hits = _hits(text, URGENT_SIGNALS)
    return {
        "id": str(ticket.get("id") or "(no id)"),
        "customer": ticket.get("customer", "unknown"),
        "subject": ticket.get("subject", ""),
        "category": category,
        "urgency": "urgent" if urgent_hits else "normal",
        "confidence": round(scores[category] / total, 2) if total else 0.0,
        "keywords": matched.get(category, []),
        "urgentSignals": urgent_hits,
    }


def route(ctx: Any) -> dict[str, Any]:
    """Classified tickets -> one queue per category, urgent ones first, and the urgent list."""
    classified: list[dict[str, Any]] = ctx.input["classified"]
    queues: dict[str, list[dict[str, Any]]] = {category: [] for category in CATEGORIES}
    for ticket in classified:
        queues[ticket["category"]].append(ticket)
    for tickets in queues.values():
        tickets.sort(key=lambda t: (t["urgency"] != "urgent", t["id"]))
    urgent = [
        {"id": t["id"], "customer": t["customer"], "subject": t["subject"], "category": t["category"]}
        for t in classified
        if t["urgency"] == "urgent"
    ]
    return {
        "queues": queues,
        "urgent": urgent,
        "counts": {category: len(tickets) for category, tickets in queues.items()},
    }


def page_on_call(ctx: Any) -> dict[str, Any]:
    """Page the on-call person of each category with urgent tickets: one page per rota.

    A real pager call would pass `ctx.idempotency_key` as its dedup key, so a retried
    attempt never pages anyone twice; here the incident id is derived from it the same way.
    """
    by_category: dict[str, list[str]] = {}
    for ticket in ctx.input["urgent"]:
        by_category.setdefault(ticket["category"], []).append(ticket["id"])
    pages = []
    for category, ids in sorted(by_category.items()):
        digest = hashlib.sha256(f"{ctx.input.get('run', '')}/{category}/{','.join(ids)}".encode()).hexdigest()
        incident = f"INC-{int(digest[:8], 16) % 100000:05d}"
        pages.append({**ON_CALL[category], "category": category, "tickets": ids, "incident": incident})
        ctx.logger.info("paged on-call", rota=ON_CALL[category]["rota"], tickets=ids, incident=incident)
    return {"paged": pages, "count": len(pages)}


async def summarize_queues(ctx: Any) -> dict[str, Any]:
    """The coordinator: one summary per non-empty queue, written in parallel by the writers pool.

    Each child is keyed by its queue name, so if this attempt is retried the children that
    already finished are reused rather than written again.
    """
    queues: dict[str, list[dict[str, Any]]] = ctx.input["queues"]
    wanted = [name for name in CATEGORIES if queues.get(name)]
    results = await asyncio.gather(
        *(ctx.delegate("writers", {"queue": name, "tickets": queues[name]}, key=name) for name in wanted)
    )
    return {"summaries": dict(zip(wanted, results, strict=True)), "delegated": len(wanted)}


def write_summary(ctx: Any) -> dict[str, Any]:
    """A short, factual summary of one queue: size, urgency, customers, recurring themes."""
    queue: str = ctx.input["queue"]
    tickets: list[dict[str, Any]] = ctx.input["tickets"]
    urgent = [t for t in tickets if t["urgency"] == "urgent"]
    themes = Counter(word for t in tickets for word in t.get("keywords", []))
    customers = sorted({t["customer"] for t in tickets})
    noun = "ticket" if len(tickets) == 1 else "tickets"
    parts = [f"{len(tickets)} {noun} from {_join(customers)}"]
    parts[0] += f", {len(urgent)} urgent" if urgent else ", none urgent"
    recurring = [(word, n) for word, n in themes.most_common(3) if n > 1]
    if recurring:
        parts.append("Recurring themes: " + ", ".join(f"{word} ({n} tickets)" for word, n in recurring))
    elif themes:
        parts.append("Signals: " + ", ".join(word for word, _ in themes.most_common(3)))
    if urgent:
        parts.append("Handle first: " + "; ".join(f"{t['id']} {t['subject']}" for t in urgent))
    parts.append(f"Suggested first step: {FIRST_ACTIONS[queue]}")
    return {"queue": queue, "tickets": len(tickets), "urgent": len(urgent), "summary": ". ".join(parts) + "."}


def build_report(ctx: Any) -> dict[str, Any]:
    """Everything above -> one markdown report and the counts per category."""
    routed = ctx.input["routed"]
    summaries: dict[str, dict[str, Any]] = ctx.input["summaries"] or {}
    escalation = ctx.input.get("escalation") or {}
    counts: dict[str, int] = routed["counts"]
    urgent: list[dict[str, Any]] = routed["urgent"]
    total = sum(counts.values())
    paged_by_ticket = {ticket: page for page in escalation.get("paged", []) for ticket in page["tickets"]}

    lines = ["# Support triage report", ""]
    breakdown = ", ".join(f"{counts[c]} {c}" for c in CATEGORIES if counts.get(c))
    noun = "ticket" if total == 1 else "tickets"
    lines.append(
        f"**{total} {noun}** triaged" + (f" ({breakdown})" if breakdown else "") + f"; **{len(urgent)} urgent**."
    )
    lines += ["", "| Category | Tickets | Urgent |", "|---|---:|---:|"]
    for category in CATEGORIES:
        in_queue = routed["queues"][category]
        hot = sum(1 for t in in_queue if t["urgency"] == "urgent")
        lines.append(f"| {category} | {counts[category]} | {hot} |")

    lines += ["", "## Urgent tickets", ""]
    if not urgent:
        lines.append("None: nobody was paged.")
    for ticket in urgent:
        page = paged_by_ticket.get(ticket["id"])
        who = f" → paged {page['who']} ({page['rota']}, {page['incident']})" if page else ""
        lines.append(f"- **{ticket['id']}** [{ticket['category']}] {ticket['customer']}: {ticket['subject']}{who}")
    if ctx.input.get("escalationState") not in (None, "succeeded", "skipped"):
        lines.append(f"- ⚠ paging did not complete (escalate step {ctx.input['escalationState']})")

    lines += ["", "## Queues", ""]
    if not summaries:
        lines.append("No tickets, so no queue summaries.")
    for category in CATEGORIES:
        summary = summaries.get(category)
        if summary:
            ids = ", ".join(t["id"] for t in routed["queues"][category])
            lines += [
                f"### {category} ({summary['tickets']})",
                "",
                summary["summary"],
                "",
                f"Tickets, urgent first: {ids}",
                "",
            ]
    return {"markdown": "\n".join(lines).rstrip() + "\n", "counts": counts, "urgent": len(urgent)}


def _join(names: list[str]) -> str:
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + f" and {names[-1]}"
