"""Natural language → n8n workflow: retrieve the closest examples, ask the LLM for JSON,
validate it, ask once more with the problems listed when it is broken, or give up with
a clear error. And the other way round, reviewing a workflow: rule-based suggestions and
the LLM's."""

from __future__ import annotations

import json
import re
from typing import Any

from .knowledge import Match
from .safety import ALLOWED_NODE_TYPES
from .validation import WorkflowInvalid, validate_workflow

MAX_WORKFLOW_TOKENS = 2048  # the longest answer asked for: a workflow's JSON, not an essay

SYSTEM = (
    "You design n8n workflows. Answer with ONE JSON object only, no prose, no markdown: "
    '{"name": str, "nodes": [{"name", "type", "typeVersion", "position": [x, y], "parameters": {}}], '
    '"connections": {"<source node name>": {"main": [[{"node": "<target node name>", "type": "main", "index": 0}]]}}}. '
    "Start with one n8n-nodes-base.webhook trigger node (httpMethod POST); no schedules, no code, no credentials "
    "(secrets come in the webhook's data). "
    "Use only these node types: " + ", ".join(sorted(ALLOWED_NODE_TYPES)) + "."
)


class BuildFailed(Exception):
    def __init__(self, message: str, problems: list[str], raw: str) -> None:
        super().__init__(message)
        self.message, self.problems, self.raw = message, problems, raw


def extract_json(text: str) -> Any:
    """The first JSON object in an LLM answer (tolerates ``` fences and prose around it)."""
    fence = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.S)
    if fence:
        text = fence.group(1)
    start = text.find("{")
    if start < 0:
        raise ValueError("the answer contains no JSON object")
    obj, _ = json.JSONDecoder().raw_decode(text[start:])
    return obj


def build_messages(prompt: str, examples: list[Match]) -> list[dict[str, str]]:
    shots = "\n\n".join(
        f"Example ({m.description}):\n{json.dumps(m.workflow, separators=(',', ':'))}" for m in examples
    )
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Build this workflow: {prompt}\n\nSimilar workflows, for reference:\n{shots}"},
    ]


async def build_workflow(
    llm: Any, model: str, prompt: str, examples: list[Match], *, repairs: int = 1, max_nodes: int = 200
) -> tuple[dict[str, Any], int]:
    """(validated workflow, attempts used) or BuildFailed."""
    messages = build_messages(prompt, examples)
    problems: list[str] = []
    raw = ""
    for attempt in range(repairs + 1):
        # A workflow's JSON fits in this; a base model would otherwise write until its context ends.
        result = await llm.chat(messages, model, temperature=0.1, max_tokens=MAX_WORKFLOW_TOKENS)
        raw = result.content
        try:
            wf = extract_json(raw)
            if isinstance(wf, dict) and "workflow" in wf and "nodes" not in wf:
                wf = wf["workflow"]
            return validate_workflow(wf, max_nodes=max_nodes), attempt + 1
        except WorkflowInvalid as exc:
            problems = exc.problems
        except ValueError as exc:
            problems = [f"not valid JSON: {exc}"]
        messages = [
            *messages,
            {"role": "assistant", "content": raw[:8000]},
            {
                "role": "user",
                "content": "That workflow is invalid: "
                + "; ".join(problems[:10])
                + ". Answer with the corrected JSON only.",
            },
        ]
    raise BuildFailed(
        f"The model did not produce a valid n8n workflow after {repairs + 1} attempt(s): " + "; ".join(problems[:5]),
        problems,
        raw[:2000],
    )


async def review(llm: Any, model: str, wf: dict[str, Any], similar: list[Match]) -> str:
    """The LLM's improvement suggestions for `wf`, shown the similar stored workflows."""
    shots = "\n".join(f"- {m.name}: {m.description} (nodes: {', '.join(m.node_types)})" for m in similar)
    messages = [
        {
            "role": "system",
            "content": "You review n8n workflows. Give at most 5 short, concrete improvement suggestions"
            " as a bulleted list.",
        },
        {
            "role": "user",
            "content": f"Similar stored workflows:\n{shots}\n\nWorkflow to improve:\n{json.dumps(wf)[:12000]}",
        },
    ]
    result = await llm.chat(messages, model, temperature=0.2, max_tokens=400)
    return result.content.strip()


def rule_suggestions(wf: dict[str, Any], similar: list[Match]) -> list[dict[str, Any]]:
    """Deterministic suggestions: checks of the workflow itself, and node types the most
    similar stored workflows use that this one lacks."""
    out: list[dict[str, Any]] = []
    nodes = wf.get("nodes", [])
    types = {n.get("type") for n in nodes}
    http = [n for n in nodes if n.get("type") == "n8n-nodes-base.httpRequest"]
    for n in http:
        if not n.get("retryOnFail") and n.get("onError") is None:
            out.append(
                {
                    "kind": "reliability",
                    "node": n["name"],
                    "text": f"'{n['name']}' calls an external API without retries or an error output:"
                    " set retryOnFail/maxTries or onError=continueErrorOutput.",
                }
            )
    for n in nodes:
        if n.get("disabled"):
            out.append(
                {
                    "kind": "cleanup",
                    "node": n["name"],
                    "text": f"'{n['name']}' is disabled: remove it if it is not needed.",
                }
            )
        params = json.dumps(n.get("parameters", {})).lower()
        if any(s in params for s in ("password", "api_key", "apikey", "secret", "token")):
            out.append(
                {
                    "kind": "security",
                    "node": n["name"],
                    "text": f"'{n['name']}' seems to hold a secret in its parameters: send it in the run's data"
                    " (the webhook's body) instead of storing it in the workflow.",
                }
            )
    if "n8n-nodes-base.webhook" in types:
        wh = next(n for n in nodes if n.get("type") == "n8n-nodes-base.webhook")
        if (
            wh.get("parameters", {}).get("responseMode") == "responseNode"
            and "n8n-nodes-base.respondToWebhook" not in types
        ):
            out.append(
                {
                    "kind": "correctness",
                    "node": wh["name"],
                    "text": "The Webhook answers via a 'Respond to Webhook' node, but the workflow has none.",
                }
            )
    sets = [n for n in nodes if n.get("type") == "n8n-nodes-base.set"]
    if len(sets) >= 3:
        out.append(
            {
                "kind": "simplify",
                "text": f"{len(sets)} Set nodes: consecutive Set nodes can usually be merged into one.",
            }
        )
    for m in similar:
        missing = [t for t in m.node_types if t not in types and t not in ("n8n-nodes-base.manualTrigger",)]
        for t in missing:
            short = t.removeprefix("n8n-nodes-base.")
            if short in ("respondToWebhook", "if", "set", "limit", "httpRequest") or m.score > 0.6:
                out.append(
                    {
                        "kind": "pattern",
                        "example": m.slug,
                        "node_type": t,
                        "text": f"The similar stored workflow '{m.name}' (similarity {m.score:.2f}) also uses"
                        f" a '{short}' node: {m.description}.",
                    }
                )
    seen: set[str] = set()
    unique = []
    for s in out:
        if s["text"] not in seen:
            seen.add(s["text"])
            unique.append(s)
    return unique
