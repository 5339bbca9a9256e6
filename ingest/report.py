"""Accounting: where every input ended (kept, duplicate, rejected by reason), per source, and the table the
CLI prints at the end."""

from __future__ import annotations

from collections import Counter

from ingest.records import VideoRecord
from videomae.reasons import REASONS


def count_outcomes(records: list[VideoRecord], sources: list[str]) -> dict:
    """{source: {seen, kept, duplicates, rejected: {reason: n}, clips, hours}} plus "total"."""
    out = {s: {"seen": 0, "kept": 0, "duplicates": 0, "rejected": {}, "clips": 0, "hours": 0.0} for s in sources}
    for r in records:
        row = out[r.source]
        row["seen"] += 1
        if not r.ok:
            row["rejected"][r.reason] = row["rejected"].get(r.reason, 0) + 1
        elif not r.kept:
            row["duplicates"] += 1
        else:
            row["kept"] += 1
            row["clips"] += r.clips
            row["hours"] += r.duration_s / 3600.0
    total = {"seen": 0, "kept": 0, "duplicates": 0, "rejected": Counter(), "clips": 0, "hours": 0.0}
    for row in out.values():
        row["hours"] = round(row["hours"], 6)
        row["rejected"] = dict(sorted(row["rejected"].items()))
        for k in ("seen", "kept", "duplicates", "clips", "hours"):
            total[k] += row[k]
        total["rejected"].update(row["rejected"])
    total["rejected"] = dict(sorted(total["rejected"].items()))
    total["hours"] = round(total["hours"], 6)
    out["total"] = total
    return out


def format_table(counts: dict) -> str:
    """Plain-text table: one row per source (and a total), one column per drop reason that occurred."""
    reasons = [r for r in REASONS if any(r in row["rejected"] for row in counts.values())]
    header = ["source", "seen", "kept", "dup", *[f"rej:{r}" for r in reasons], "clips", "hours"]
    rows = [[name, str(row["seen"]), str(row["kept"]), str(row["duplicates"]),
             *[str(row["rejected"].get(r, 0)) for r in reasons], str(row["clips"]), f"{row['hours']:.4f}"]
            for name, row in counts.items()]
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *[line(r) for r in rows[:-1]], sep, line(rows[-1])])
