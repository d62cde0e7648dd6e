"""A tiny agent: counts words and reports the most frequent one."""

from collections import Counter
from typing import Any


def count_words(ctx: Any) -> dict[str, Any]:
    words = str(ctx.input.get("text", "")).lower().split()
    common = Counter(words).most_common(1)
    return {"words": len(words), "top": common[0][0] if common else None}
