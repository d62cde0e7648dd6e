"""Agents for the research-pipeline example: plan, research, draft, publish.

The researcher answers from a small offline knowledge base instead of the web or a
model, so the example runs without network and gives the same draft every time. A real
deployment would make the researcher and the writer `llm` runtime templates (or python
handlers that call a search API) and keep the workflow, the approval gate included.
"""

from __future__ import annotations

import re
from typing import Any

from pweza.agent.sdk import TaskFailure

# The angles a briefing covers, in order; the planner takes the first N.
ANGLES = [
    ("overview", "{topic}: what is it, in a paragraph?"),
    ("mechanism", "{topic}: how does it work in practice?"),
    ("adoption", "{topic}: who uses it today, and why?"),
    ("limits", "{topic}: what are the main limitations and risks?"),
    ("costs", "{topic}: what does it cost, and what drives the cost?"),
    ("outlook", "{topic}: what is likely to change in the next few years?"),
]

# topic id -> (words that identify it, notes per angle). Deliberately tiny and general.
KNOWLEDGE: dict[str, tuple[tuple[str, ...], dict[str, list[str]]]] = {
    "heat-pumps": (
        ("heat pump", "heat-pump"),
        {
            "overview": [
                "A heat pump moves heat rather than making it: a refrigerant cycle pulls heat from outside air,"
                " the ground or water and releases it indoors.",
                "Because it moves heat, it typically delivers 2.5 to 4 units of heat per unit of electricity"
                " (a coefficient of performance, COP, of 2.5 to 4).",
            ],
            "mechanism": [
                "A compressor raises the pressure and temperature of a refrigerant that absorbed heat outdoors;"
                " it condenses in the indoor coil, releasing that heat, and an expansion valve closes the loop.",
                "Modern air-source units keep working well below freezing, though efficiency falls as the"
                " outdoor temperature drops.",
            ],
            "adoption": [
                "They are most common in the Nordic countries, where a large share of homes use them.",
                "Building codes and subsidies in several European countries and US states now favour them over"
                " new fossil-fuel boilers.",
            ],
            "limits": [
                "The up-front cost is higher than a gas boiler's, and poorly insulated homes may need insulation"
                " or larger radiators first.",
                "Performance depends on correct sizing and installation; an undersized unit leans on expensive"
                " resistive backup heat.",
            ],
            "costs": [
                "Installed prices vary widely with the type: air-source systems cost far less than ground-source"
                " ones, which need drilling or trenching.",
                "Running costs depend mostly on the ratio of electricity to gas prices and on the unit's seasonal"
                " efficiency.",
            ],
            "outlook": [
                "Natural refrigerants such as propane (R290) and CO2 are replacing refrigerants with a high"
                " global-warming potential.",
                "Cold-climate models and time-of-use electricity tariffs are making heat pumps viable in more homes.",
            ],
        },
    ),
    "vector-databases": (
        ("vector database", "vector db", "vector search", "embedding"),
        {
            "overview": [
                "A vector database stores embeddings, lists of numbers produced by a model, and finds the items"
                " nearest to a query embedding.",
                "It is the retrieval layer of most retrieval-augmented generation (RAG) systems.",
            ],
            "mechanism": [
                "Exact nearest-neighbour search is too slow at scale, so they use approximate indexes such as HNSW"
                " graphs or IVF partitions, trading a little recall for speed.",
                "Most combine vector search with metadata filters, and many add keyword (hybrid) search.",
            ],
            "adoption": [
                "Teams use them for semantic search, recommendations, deduplication and long-term memory for agents.",
                "Options range from dedicated systems to extensions of existing databases, such as pgvector for"
                " PostgreSQL.",
            ],
            "limits": [
                "Results are only as good as the embeddings, and changing the embedding model means re-embedding"
                " everything.",
                "Approximate indexes can miss relevant items, and combining filters with approximate search can"
                " hurt recall.",
            ],
            "costs": [
                "Memory is the main cost driver: graph indexes keep vectors in RAM, so count x dimensions x 4 bytes"
                " adds up fast.",
                "Quantisation cuts memory several-fold at some loss of accuracy.",
            ],
            "outlook": [
                "General-purpose databases keep adding vector indexes, narrowing the gap with dedicated systems.",
                "Hybrid keyword-plus-vector search is becoming the default for quality-sensitive retrieval.",
            ],
        },
    ),
}


def plan(ctx: Any) -> dict[str, Any]:
    """Topic + N -> a title and N questions, one per angle."""
    topic = str(ctx.input["topic"]).strip()
    count = int(ctx.input.get("questions", 3))
    if not topic:
        raise TaskFailure("the topic is empty", type="InvalidInput", retryable=False)
    if not 1 <= count <= len(ANGLES):
        # Not retryable: asking again will not make the input valid.
        raise TaskFailure(f"questions must be 1 to {len(ANGLES)}, got {count}", type="InvalidInput", retryable=False)
    heading = topic[0].upper() + topic[1:]
    questions = [
        {"n": n, "angle": angle, "question": template.format(topic=heading)}
        for n, (angle, template) in enumerate(ANGLES[:count], start=1)
    ]
    return {"topic": topic, "title": f"{heading}: a {count}-question briefing", "questions": questions}


def research(ctx: Any) -> dict[str, Any]:
    """One question -> an answer with its sources, from the offline notes when there are any."""
    topic: str = ctx.input["topic"]
    question: dict[str, Any] = ctx.input["question"]
    angle = question["angle"]
    lowered = topic.lower()
    for topic_id, (words, notes) in KNOWLEDGE.items():
        if any(word in lowered for word in words):
            return {
                **question,
                "answer": " ".join(notes[angle]),
                "sources": [f"kb://{topic_id}/{angle}"],
                "confidence": "high",
            }
    return {
        **question,
        "answer": (
            f"The offline notes have nothing on {topic!r}. A real researcher agent would search the web or a"
            " document store here (or ask a model through the llm runtime) and cite what it found."
        ),
        "sources": [],
        "confidence": "none",
    }


def draft(ctx: Any) -> dict[str, Any]:
    """The findings -> a markdown draft, with a note of which answers have no source."""
    title: str = ctx.input["title"]
    findings: list[dict[str, Any]] = ctx.input["findings"]
    supported = [f for f in findings if f["sources"]]
    lines = [
        f"# {title}",
        "",
        f"*{len(findings)} questions on {ctx.input['topic']}; {len(supported)} answered from cited notes.*",
        "",
    ]
    for finding in findings:
        lines += [f"## {finding['n']}. {finding['question']}", "", finding["answer"], ""]
    sources = [source for f in findings for source in f["sources"]]
    lines += ["## Sources", ""] + ([f"- {s}" for s in sources] or ["- none: every answer needs a source first"])
    markdown = "\n".join(lines) + "\n"
    return {
        "title": title,
        "markdown": markdown,
        "words": _words(markdown),
        "unsupported": [f["n"] for f in findings if not f["sources"]],
    }


def publish(ctx: Any) -> dict[str, Any]:
    """The approved draft -> a slug, a URL and a word count.

    A real publisher would PUT the page to a CMS keyed on the slug (and on
    `ctx.idempotency_key` for the request), so a retried attempt updates the same page.
    """
    title: str = ctx.input["title"]
    markdown: str = ctx.input["markdown"]
    approval = ctx.input.get("approval") or {}
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].rstrip("-")
    return {
        "title": title,
        "slug": slug,
        "url": f"https://research.example.com/briefings/{slug}",
        "words": _words(markdown),
        "approvedBy": approval.get("by"),
        "comment": approval.get("comment") or None,
    }


def _words(markdown: str) -> int:
    return len(re.findall(r"[A-Za-z0-9][\w'-]*", markdown))
