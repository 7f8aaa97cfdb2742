"""How a chat answer carries an artifact.

The system prompt (INSTRUCTIONS, after CHAT_SYSTEM_PROMPT) asks the model, when the user wants
a spreadsheet, document, PDF, presentation or code, to put one fenced block in its answer:

    ```artifact
    {"type": "spreadsheet", "title": "Sales", "spec": {"sheets": [...]}}
    ```

`find_block` takes the first such block of a finished answer and validates it as POST
/api/artifacts would (specs.py): the turn then creates the artifact (chat/turn.py). The answer's
text is kept as the model wrote it.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from pydantic import ValidationError

from .specs import ArtifactCreate

INSTRUCTIONS = """\
When the user asks for a spreadsheet, a Word document, a PDF, a presentation or a small web \
app, component or code project, answer briefly and include exactly one block like this one:
```artifact
{"type": T, "title": "...", "spec": S}
```
holding JSON, where T and S are:
- "spreadsheet": {"sheets": [{"name": "Sheet1", "header": true, \
"rows": [["Item", "Qty"], ["a", 1], ["Total", "=SUM(B2:B2)"]]}]} (a string starting with "=" is a formula);
- "document" or "pdf": {"blocks": [{"type": "heading", "text": "...", "level": 1}, \
{"type": "paragraph", "text": "..."}, {"type": "list", "items": ["..."], "ordered": false}, \
{"type": "table", "rows": [["h1", "h2"], ["a", "b"]]}]};
- "presentation": {"slides": [{"title": "...", "bullets": ["..."], "notes": "..."}]};
- "code", "website" or "app": {"files": {"App.tsx": "..."}, "entry_file": "App.tsx", \
"framework": "react", "dependencies": {}}.
The file is made from that block; do not write code that makes the file."""

_BLOCK = re.compile(r"```artifact[ \t]*\r?\n(.*?)\r?\n?```", re.S)


def system_prompt(base: str) -> str:
    return f"{base}\n\n{INSTRUCTIONS}" if base else INSTRUCTIONS


def find_block(answer: str) -> tuple[ArtifactCreate | None, str | None]:
    """(the artifact asked for, None), (None, why it can't be made), or (None, None) when the
    answer has no artifact block."""
    match = _BLOCK.search(answer)
    if match is None:
        return None, None
    try:
        raw: Any = orjson.loads(match.group(1))
    except orjson.JSONDecodeError:
        return None, "The artifact block is not valid JSON"
    if not isinstance(raw, dict):
        return None, "The artifact block must be a JSON object"
    try:
        return ArtifactCreate.model_validate(raw), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"Invalid artifact{f' ({where})' if where else ''}: {first['msg']}"[:500]
