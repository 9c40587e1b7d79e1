"""Score and diversity tables for the terminal and for Markdown files."""

from __future__ import annotations

COLUMNS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
# column -> field of the "diversity" record in eval/<split>.json (pipeline/evaluation/diversity.py)
DIVERSITY_FIELDS = {"distinct": "distinct_share", "vocab": "vocabulary", "Div-1": "div_1", "Div-2": "div_2",
                    "novel": "novel_share", "rep-2": "repeated_2grams"}
DIVERSITY_COLUMNS = tuple(DIVERSITY_FIELDS)


def format_table(rows: dict[str, dict[str, float | None]], columns: tuple[str, ...] = COLUMNS,
                 markdown: bool = False) -> str:
    """rows: model name -> {column: value}; missing values print as "n/a"."""
    header = ["model", *columns]
    body = [[name, *(format_cell(scores.get(c)) for c in columns)] for name, scores in rows.items()]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in body])


def diversity_cells(diversity: dict | None) -> dict[str, float | int | None]:
    """A report's diversity record as table cells; reports written before it existed give n/a."""
    return {column: (diversity or {}).get(field) for column, field in DIVERSITY_FIELDS.items()}


def format_cell(value: float | str | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
