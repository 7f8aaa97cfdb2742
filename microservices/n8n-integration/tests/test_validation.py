from __future__ import annotations

import json
from importlib import resources

import pytest

from n8n_integration.validation import WEBHOOK_TYPE, WorkflowInvalid, ensure_webhook, targets, validate_workflow


def wf(**extra):
    base = {
        "name": "Hello",
        "nodes": [
            {"name": "Hook", "type": "n8n-nodes-base.webhook", "typeVersion": 2, "parameters": {"path": "a"}},
            {"name": "Set", "type": "n8n-nodes-base.set", "typeVersion": 3.4, "parameters": {}},
        ],
        "connections": {"Hook": {"main": [[{"node": "Set"}]]}},
    }
    base.update(extra)
    return base


def test_valid_workflow_is_normalised() -> None:
    out = validate_workflow(wf())
    assert out["name"] == "Hello" and set(out) == {"name", "nodes", "connections", "settings"}
    assert all(isinstance(n["id"], str) and len(n["position"]) == 2 for n in out["nodes"])
    assert out["connections"]["Hook"]["main"][0][0] == {"node": "Set", "type": "main", "index": 0}
    assert out["settings"] == {"executionOrder": "v1"}


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ([], "JSON object"),
        ({"nodes": []}, "name: a non-empty string"),
        (wf(nodes=[]), "nodes: a non-empty list"),
        (wf(nodes=[{"name": "A", "type": "n8n-nodes-base.nope"}]), "node type 'n8n-nodes-base.nope' is not allowed"),
        (wf(nodes=[{"name": "A", "type": "n8n-nodes-base.noOp"}] * 2, connections={}), "duplicate node name"),
        (wf(connections={"Ghost": {"main": [[{"node": "Set"}]]}}), "source 'Ghost' is not a node"),
        (wf(connections={"Hook": {"main": [[{"node": "Ghost"}]]}}), "target 'Ghost' is not a node"),
        (wf(connections={"Hook": "x"}), "must be an object"),
        (wf(connections={}), "is not connected to anything"),
        (wf(nodes=[{"name": "A", "type": "n8n-nodes-base.noOp", "typeVersion": "x"}], connections={}), "typeVersion"),
        (wf(nodes=[{"name": "A", "type": "n8n-nodes-base.noOp", "position": [1]}], connections={}), "position"),
    ],
)
def test_broken_workflows_are_rejected_with_reasons(raw, needle) -> None:
    with pytest.raises(WorkflowInvalid) as err:
        validate_workflow(raw)
    assert needle in str(err.value)


def test_too_many_nodes() -> None:
    nodes = [{"name": f"N{i}", "type": "n8n-nodes-base.noOp"} for i in range(5)]
    with pytest.raises(WorkflowInvalid, match="at most 3 nodes"):
        validate_workflow(wf(nodes=nodes, connections={}), max_nodes=3)


def test_ensure_webhook_takes_over_an_existing_webhook() -> None:
    out, path = ensure_webhook(validate_workflow(wf()))
    hook = out["nodes"][0]
    assert hook["parameters"]["path"] == path and path.startswith("harvis-")
    assert hook["parameters"]["httpMethod"] == "POST" and hook["parameters"]["responseMode"] == "lastNode"
    assert hook["webhookId"]
    assert ensure_webhook(validate_workflow(wf()))[1] != path  # unique per workflow


def test_ensure_webhook_replaces_a_manual_trigger() -> None:
    raw = {
        "name": "Manual",
        "nodes": [
            {"name": "Start", "type": "n8n-nodes-base.manualTrigger", "parameters": {}},
            {"name": "Echo", "type": "n8n-nodes-base.set", "parameters": {"includeOtherFields": True}},
        ],
        "connections": {"Start": {"main": [[{"node": "Echo"}]]}},
    }
    out, _ = ensure_webhook(validate_workflow(raw))
    assert [n["type"] for n in out["nodes"]] == [WEBHOOK_TYPE, "n8n-nodes-base.set"]
    assert targets(out["connections"]["Webhook"]) == ["Echo"] and "Start" not in out["connections"]
    validate_workflow(out)  # still valid


def test_ensure_webhook_feeds_the_start_nodes_of_a_triggerless_workflow() -> None:
    raw = {"name": "Bare", "nodes": [{"name": "Only", "type": "n8n-nodes-base.noOp"}], "connections": {}}
    out, _ = ensure_webhook(validate_workflow(raw))
    assert targets(out["connections"]["Webhook"]) == ["Only"]


def test_every_seed_example_is_valid() -> None:
    files = [f for f in resources.files("n8n_integration.examples").iterdir() if f.name.endswith(".json")]
    assert len(files) >= 8
    for f in files:
        ex = json.loads(f.read_text())
        assert ex["slug"] == f.name.removesuffix(".json") and len(ex["description"]) > 40
        validate_workflow(ex["workflow"])
