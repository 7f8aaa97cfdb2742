"""Checks an n8n workflow JSON before it goes to n8n, and normalises what n8n needs.

A workflow is `{name, nodes: [...], connections: {...}, settings?}`. Each node needs a
unique `name`, a known `type`, a numeric `typeVersion`, an object `parameters` and a
`position` (filled in when missing). `connections` maps a source node name to
`{"main": [[{"node": <target name>, "type": "main", "index": 0}], ...]}`; every name
must exist. Problems are collected and reported together.

`safe=True` (everything that reaches n8n) adds what an untrusted user's workflow may
contain (`safety.py`: allowed node types and modes, no credentials, expressions without
sandbox escapes, harmless settings); `safe=False` only reads a workflow (optimize's review).
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from . import safety

# Node types the validator recognises when it only reads a workflow (core nodes of n8n 2.x);
# what may run is safety.ALLOWED_NODE_TYPES.
KNOWN_NODE_TYPES: dict[str, float] = {
    "n8n-nodes-base.webhook": 2,
    "n8n-nodes-base.respondToWebhook": 1.1,
    "n8n-nodes-base.manualTrigger": 1,
    "n8n-nodes-base.scheduleTrigger": 1.2,
    "n8n-nodes-base.cron": 1,
    "n8n-nodes-base.set": 3.4,
    "n8n-nodes-base.code": 2,
    "n8n-nodes-base.if": 2.2,
    "n8n-nodes-base.switch": 3.2,
    "n8n-nodes-base.filter": 2.2,
    "n8n-nodes-base.merge": 3,
    "n8n-nodes-base.noOp": 1,
    "n8n-nodes-base.wait": 1.1,
    "n8n-nodes-base.httpRequest": 4.2,
    "n8n-nodes-base.splitOut": 1,
    "n8n-nodes-base.aggregate": 1,
    "n8n-nodes-base.sort": 1,
    "n8n-nodes-base.limit": 1,
    "n8n-nodes-base.removeDuplicates": 1.1,
    "n8n-nodes-base.splitInBatches": 3,
    "n8n-nodes-base.dateTime": 2,
    "n8n-nodes-base.crypto": 1,
    "n8n-nodes-base.html": 1.2,
    "n8n-nodes-base.markdown": 1,
    "n8n-nodes-base.xml": 1,
    "n8n-nodes-base.emailSend": 2.1,
    "n8n-nodes-base.slack": 2.3,
    "n8n-nodes-base.telegram": 1.2,
    "n8n-nodes-base.discord": 2,
    "n8n-nodes-base.googleSheets": 4.5,
    "n8n-nodes-base.gmail": 2.1,
    "n8n-nodes-base.rssFeedRead": 1.1,
    "n8n-nodes-base.postgres": 2.5,
    "n8n-nodes-base.redis": 1,
    "n8n-nodes-base.stopAndError": 1,
    "n8n-nodes-base.errorTrigger": 1,
    "n8n-nodes-base.executeWorkflowTrigger": 1.1,
    "n8n-nodes-base.formTrigger": 2.2,
    **safety.ALLOWED_NODE_TYPES,
}
TRIGGER_TYPES = frozenset(
    {
        "n8n-nodes-base.webhook",
        "n8n-nodes-base.manualTrigger",
        "n8n-nodes-base.scheduleTrigger",
        "n8n-nodes-base.cron",
        "n8n-nodes-base.errorTrigger",
        "n8n-nodes-base.executeWorkflowTrigger",
        "n8n-nodes-base.formTrigger",
    }
)
WEBHOOK_TYPE = safety.WEBHOOK_TYPE
MAX_NAME = 128
MAX_WAIT_S = 60.0


def targets(outputs: dict[str, Any]) -> list[str]:
    """Names of the nodes one source's outputs feed (`{"main": [[{node}], ...]}`)."""
    return [t["node"] for branches in outputs.values() for branch in branches or [] for t in branch or []]


class WorkflowInvalid(ValueError):
    """The workflow JSON is not one n8n can take; `problems` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def validate_workflow(
    raw: Any, *, max_nodes: int = 200, safe: bool = True, max_wait_s: float = MAX_WAIT_S
) -> dict[str, Any]:
    """A normalised copy of `raw` (positions, ids, settings filled in), or WorkflowInvalid."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise WorkflowInvalid(["the workflow must be a JSON object with name, nodes and connections"])
    wf = copy.deepcopy(raw)
    name = wf.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("name: a non-empty string is required")
    elif len(name) > MAX_NAME:
        problems.append(f"name: at most {MAX_NAME} characters")
    nodes = wf.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        problems.append("nodes: a non-empty list is required")
        nodes = []
    elif len(nodes) > max_nodes:
        problems.append(f"nodes: at most {max_nodes} nodes")
    names: set[str] = set()
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        if not isinstance(node, dict):
            problems.append(f"{where}: must be an object")
            continue
        nname = node.get("name")
        if not isinstance(nname, str) or not nname.strip():
            problems.append(f"{where}.name: a non-empty string is required")
        elif nname in names:
            problems.append(f"{where}.name: duplicate node name {nname!r}")
        else:
            names.add(nname)
            where = f"node {nname!r}"
        ntype = node.get("type")
        if safe:
            why = safety.type_problem(ntype, where)
            if why:
                problems.append(why)
        elif not isinstance(ntype, str) or ntype not in KNOWN_NODE_TYPES:
            problems.append(f"{where}.type: unknown node type {ntype!r}")
        version = node.get("typeVersion", KNOWN_NODE_TYPES.get(ntype, 1) if isinstance(ntype, str) else 1)
        if isinstance(version, bool) or not isinstance(version, int | float) or version <= 0:
            problems.append(f"{where}.typeVersion: a positive number is required")
        else:
            node["typeVersion"] = version
        params = node.setdefault("parameters", {})
        if not isinstance(params, dict):
            problems.append(f"{where}.parameters: must be an object")
        elif safe:
            problems += safety.node_problems(node, where, max_wait_s=max_wait_s)
            problems += safety.expression_problems(params, where)
        pos = node.get("position")
        if pos is None:
            node["position"] = [250 + 220 * i, 300]
        elif not (
            isinstance(pos, list)
            and len(pos) == 2
            and all(isinstance(p, int | float) and not isinstance(p, bool) for p in pos)
        ):
            problems.append(f"{where}.position: must be [x, y]")
        if not isinstance(node.get("id"), str) or not node.get("id"):
            node["id"] = str(uuid.uuid4())
    conns = wf.get("connections", {})
    if not isinstance(conns, dict):
        problems.append("connections: must be an object keyed by node name")
        conns = {}
    for src, outputs in conns.items():
        if src not in names:
            problems.append(f"connections: source {src!r} is not a node")
        if not isinstance(outputs, dict):
            problems.append(f"connections[{src!r}]: must be an object like {{'main': [[...]]}}")
            continue
        for kind, branches in outputs.items():
            if not isinstance(branches, list):
                problems.append(f"connections[{src!r}].{kind}: must be a list of output branches")
                continue
            for branch in branches:
                if branch is None:
                    continue
                if not isinstance(branch, list):
                    problems.append(f"connections[{src!r}].{kind}: each branch must be a list")
                    continue
                for target in branch:
                    if not isinstance(target, dict) or not isinstance(target.get("node"), str):
                        problems.append(f"connections[{src!r}].{kind}: each target needs a node name")
                    elif target["node"] not in names:
                        problems.append(f"connections[{src!r}]: target {target['node']!r} is not a node")
                    else:
                        target.setdefault("type", kind)
                        target.setdefault("index", 0)
    wf["connections"] = conns
    settings = wf.get("settings") or {}
    if not isinstance(settings, dict):
        problems.append("settings: must be an object")
        settings = {}
    if safe:
        problems += safety.settings_problems(settings)
        hooks = [n for n in nodes if isinstance(n, dict) and n.get("type") == WEBHOOK_TYPE]
        if len(hooks) > 1:
            problems.append("nodes: only one Webhook node (Harvis runs the workflow through it)")
    if problems:
        raise WorkflowInvalid(problems)
    if len(names) > 1:
        linked = set(conns) | {n for o in conns.values() for n in targets(o)}
        lonely = sorted(n for n in names if n not in linked)
        if lonely:
            raise WorkflowInvalid([f"node {n!r} is not connected to anything" for n in lonely])
    return {
        "name": wf["name"].strip(),
        "nodes": wf["nodes"],
        "connections": conns,
        "settings": safety.safe_settings(settings),
    }


def webhook_node(wf: dict[str, Any]) -> dict[str, Any] | None:
    for node in wf["nodes"]:
        if node.get("type") == WEBHOOK_TYPE and not node.get("disabled"):
            return node
    return None


def ensure_webhook(wf: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(workflow, webhook path): the service runs workflows through n8n's webhook trigger.

    An existing Webhook node gets a unique path (ours, so users can't collide) and answers
    with the last node's output; a workflow without one gets a Webhook node wired to every
    node that nothing feeds (a manual trigger is replaced by it)."""
    wf = copy.deepcopy(wf)
    path = f"harvis-{uuid.uuid4().hex}"
    node = webhook_node(wf)
    if node is None:
        manual = [n for n in wf["nodes"] if n.get("type") == "n8n-nodes-base.manualTrigger"]
        fed = {n for o in wf["connections"].values() for n in targets(o)}
        starts: list[str] = []
        for m in manual:
            starts += targets(wf["connections"].pop(m["name"], {}))
            wf["nodes"].remove(m)
        if not manual:
            starts = [n["name"] for n in wf["nodes"] if n["name"] not in fed and n.get("type") not in TRIGGER_TYPES]
        taken = {n["name"] for n in wf["nodes"]}
        name = "Webhook" if "Webhook" not in taken else "Harvis Webhook"
        xs = [n["position"][0] for n in wf["nodes"]] or [250]
        node = {"name": name, "type": WEBHOOK_TYPE, "typeVersion": 2, "parameters": {}, "id": str(uuid.uuid4())}
        node["position"] = [min(xs) - 220, 300]
        wf["nodes"].insert(0, node)
        if starts:
            wf["connections"][name] = {
                "main": [[{"node": s, "type": "main", "index": 0} for s in dict.fromkeys(starts)]]
            }
    params = node.setdefault("parameters", {})
    params["path"] = path
    params["httpMethod"] = "POST"
    if params.get("responseMode") not in ("responseNode", "lastNode"):
        params["responseMode"] = "lastNode"
    if params["responseMode"] == "lastNode":
        params.setdefault("responseData", "allEntries")
    params.setdefault("options", {})
    node["webhookId"] = str(uuid.uuid4())
    return wf, path
