from __future__ import annotations

import json

import pytest

from harvis_common.llm import ChatResult
from n8n_integration.builder import BuildFailed, build_workflow, extract_json, rule_suggestions
from n8n_integration.knowledge import Match, load_examples

GOOD = {
    "name": "Built",
    "nodes": [
        {"name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2, "parameters": {}},
        {"name": "Set", "type": "n8n-nodes-base.set", "typeVersion": 3.4, "parameters": {}},
    ],
    "connections": {"Webhook": {"main": [[{"node": "Set", "type": "main", "index": 0}]]}},
}


class ScriptedLLM:
    """Stands in for harvis_common.llm's client: answers from a script, records the calls."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls: list[list[dict]] = []

    async def chat(self, messages, model, **kw) -> ChatResult:
        self.calls.append(list(messages))
        return ChatResult(content=self.answers.pop(0), reasoning="", model=model)


def examples() -> list[Match]:
    ex = {e["slug"]: e for e in load_examples()}["webhook-greeting"]
    types = sorted({n["type"] for n in ex["workflow"]["nodes"]})
    return [Match(ex["slug"], ex["workflow"]["name"], ex["description"], ex["workflow"], types, 0.8)]


def test_extract_json_tolerates_fences_and_prose() -> None:
    assert extract_json('Sure!\n```json\n{"a": [1]}\n```\nEnjoy') == {"a": [1]}
    assert extract_json('Here: {"a": {"b": 2}} trailing {"c": 3}') == {"a": {"b": 2}}
    with pytest.raises(ValueError):
        extract_json("no json here")


async def test_builder_returns_a_valid_workflow_and_sends_the_examples() -> None:
    llm = ScriptedLLM("```json\n" + json.dumps(GOOD) + "\n```")
    wf, attempts = await build_workflow(llm, "m", "greet people", examples())
    assert attempts == 1 and wf["name"] == "Built"
    prompt = llm.calls[0][-1]["content"]
    assert prompt.startswith("Build this workflow: greet people") and "Webhook greeting" in prompt


async def test_builder_repairs_once_with_the_problems_listed() -> None:
    broken = {**GOOD, "nodes": [{"name": "X", "type": "n8n-nodes-base.teleport"}], "connections": {}}
    llm = ScriptedLLM(json.dumps(broken), json.dumps(GOOD))
    wf, attempts = await build_workflow(llm, "m", "p", examples(), repairs=1)
    assert attempts == 2 and wf["name"] == "Built"
    assert "node type 'n8n-nodes-base.teleport' is not allowed" in llm.calls[1][-1]["content"]


async def test_builder_never_returns_an_unsafe_workflow() -> None:
    # A model that answers with a Code node (or a schedule) gets the refusal back to repair it.
    unsafe = {**GOOD, "nodes": [GOOD["nodes"][0], {"name": "Set", "type": "n8n-nodes-base.code",
                                                    "parameters": {"jsCode": "return process.env"}}]}  # fmt: skip
    llm = ScriptedLLM(json.dumps(unsafe), json.dumps(unsafe))
    with pytest.raises(BuildFailed) as err:
        await build_workflow(llm, "m", "p", examples(), repairs=1)
    assert "'n8n-nodes-base.code' is not allowed: it runs code" in llm.calls[1][-1]["content"]
    assert "not allowed" in err.value.message
    assert "n8n-nodes-base.code" not in llm.calls[0][0]["content"]  # never offered to the model


async def test_builder_gives_up_with_a_clear_error() -> None:
    llm = ScriptedLLM("I cannot do that", "still no")
    with pytest.raises(BuildFailed) as err:
        await build_workflow(llm, "m", "p", examples(), repairs=1)
    assert "after 2 attempt(s)" in err.value.message and "not valid JSON" in err.value.message


def test_rule_suggestions_are_grounded_in_similar_examples() -> None:
    ex = {e["slug"]: e for e in load_examples()}["webhook-error-handling"]
    similar = [Match(ex["slug"], ex["workflow"]["name"], ex["description"], ex["workflow"],
                     sorted({n["type"] for n in ex["workflow"]["nodes"]}), 0.7)]  # fmt: skip
    wf = {
        "name": "x",
        "nodes": [
            {"name": "Webhook", "type": "n8n-nodes-base.webhook", "parameters": {"responseMode": "responseNode"}},
            {"name": "Call", "type": "n8n-nodes-base.httpRequest", "parameters": {"url": "https://a", "token": "abc"}},
        ],
        "connections": {"Webhook": {"main": [[{"node": "Call"}]]}},
    }
    out = rule_suggestions(wf, similar)
    kinds = [s["kind"] for s in out]
    assert {"reliability", "security", "correctness", "pattern"} <= set(kinds)
    pattern = [s for s in out if s["kind"] == "pattern"]
    assert pattern[0]["example"] == "webhook-error-handling" and pattern[0]["node_type"].endswith("respondToWebhook")
