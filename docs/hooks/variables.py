"""mkdocs hook: the configuration page's table of every IMGSEARCH_* variable, generated.

The marker `<!-- variables -->` in a page is replaced by a table built from
`imgsearch.config.documented_variables()`, so the page cannot drift from the code.
"""

from __future__ import annotations

MARKER = "<!-- variables -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table() -> str:
    from imgsearch.config import documented_variables

    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [
        f"| `{name}` | {_cell(default)} | {_cell(meaning)} |"
        for name, default, meaning in documented_variables()
    ]
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (mkdocs' signature)
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, table())
