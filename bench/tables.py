"""The plain right-aligned text table the bench scripts print (one row per dict, the first row's keys as columns)."""

from __future__ import annotations


def table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    w = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    lines = ["  ".join(c.rjust(x) for c, x in zip(cols, w, strict=True))]
    lines += ["  ".join(str(r[c]).rjust(x) for c, x in zip(cols, w, strict=True)) for r in rows]
    return "\n".join(lines)
