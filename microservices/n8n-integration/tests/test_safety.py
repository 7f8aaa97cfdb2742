"""Issue 14, finding 1: what an untrusted user's workflow may contain.

Every workflow a user sends is hostile until shown otherwise: only node types that can
neither run code, touch files or our databases, nor call another workflow; no stored
n8n credentials (every user's workflow runs under the same n8n owner); no schedules
(nothing runs outside the per-user execution limit); and expressions — JavaScript that
n8n evaluates in its own sandbox — without the well-known sandbox escapes.
"""

from __future__ import annotations

from typing import Any

import pytest

from n8n_integration.validation import WorkflowInvalid, validate_workflow

WEBHOOK = {"name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2, "parameters": {}}


def with_node(node: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Webhook → the node under test."""
    return {
        "name": "Hostile",
        "nodes": [dict(WEBHOOK), {"name": "X", **node}],
        "connections": {"Webhook": {"main": [[{"node": "X"}]]}},
        **extra,
    }


def set_value(value: str) -> dict[str, Any]:
    """A Set node that assigns `value` (where expressions usually live)."""
    return {
        "type": "n8n-nodes-base.set",
        "typeVersion": 3.4,
        "parameters": {
            "mode": "manual",
            "assignments": {"assignments": [{"id": "a", "name": "out", "value": value, "type": "string"}]},
        },
    }


def refused(wf: dict[str, Any]) -> str:
    with pytest.raises(WorkflowInvalid) as err:
        validate_workflow(wf)
    return str(err.value)


# ---------------------------------------------------------------- node types


@pytest.mark.parametrize(
    "node_type",
    [
        "n8n-nodes-base.code",
        "n8n-nodes-base.function",
        "n8n-nodes-base.functionItem",
        "n8n-nodes-base.executeCommand",
        "n8n-nodes-base.ssh",
        "n8n-nodes-base.ftp",
        "n8n-nodes-base.readWriteFile",
        "n8n-nodes-base.readBinaryFile",
        "n8n-nodes-base.readBinaryFiles",
        "n8n-nodes-base.writeBinaryFile",
        "n8n-nodes-base.localFileTrigger",
        "n8n-nodes-base.git",
        "n8n-nodes-base.postgres",
        "n8n-nodes-base.mySql",
        "n8n-nodes-base.redis",
        "n8n-nodes-base.mongoDb",
        "n8n-nodes-base.microsoftSql",
        "n8n-nodes-base.executeWorkflow",
        "n8n-nodes-base.executeWorkflowTrigger",
        "n8n-nodes-base.n8n",
        "n8n-nodes-base.emailSend",
        "n8n-nodes-base.slack",
        "n8n-nodes-base.rssFeedRead",
        "n8n-nodes-base.errorTrigger",
        "n8n-nodes-base.formTrigger",
        "@n8n/n8n-nodes-langchain.code",
        "@n8n/n8n-nodes-langchain.toolCode",
        "n8n-nodes-base.doesNotExist",
        "evil.node",
    ],
)
def test_node_types_unsafe_for_untrusted_users_are_refused(node_type: str) -> None:
    message = refused(with_node({"type": node_type, "typeVersion": 1, "parameters": {}}))
    assert "not allowed" in message and node_type in message


@pytest.mark.parametrize(
    "node_type", ["n8n-nodes-base.scheduleTrigger", "n8n-nodes-base.cron", "n8n-nodes-base.interval"]
)
def test_schedule_triggers_are_refused(node_type: str) -> None:
    wf = {
        "name": "Forever",
        "nodes": [
            {"name": "Tick", "type": node_type, "typeVersion": 1, "parameters": {}},
            {"name": "Set", **set_value("x")},
        ],
        "connections": {"Tick": {"main": [[{"node": "Set"}]]}},
    }
    message = refused(wf)
    assert "schedule" in message and "not allowed" in message


@pytest.mark.parametrize(
    ("node", "needle"),
    [
        # Merge's SQL mode runs AlaSQL over the items (a code path with its own escapes).
        (
            {"type": "n8n-nodes-base.merge", "typeVersion": 3, "parameters": {"mode": "combineBySql", "query": "x"}},
            "combineBySql",
        ),
        # Sort and Item Lists accept a JavaScript comparator: the Code node by another name.
        (
            {"type": "n8n-nodes-base.sort", "typeVersion": 1, "parameters": {"type": "code", "code": "return 0"}},
            "code",
        ),
        (
            {
                "type": "n8n-nodes-base.itemLists",
                "typeVersion": 3,
                "parameters": {"operation": "sort", "type": "code", "code": "return 0"},
            },
            "code",
        ),
        # The HTTP Request node's own proxy option would route around the vetting proxy.
        (
            {
                "type": "n8n-nodes-base.httpRequest",
                "typeVersion": 4.2,
                "parameters": {"url": "https://example.com/", "options": {"proxy": "http://127.0.0.1:8001"}},
            },
            "proxy",
        ),
        # Waits: a time interval, short, written as a number; never a resume webhook or a date.
        ({"type": "n8n-nodes-base.wait", "typeVersion": 1.1, "parameters": {"resume": "webhook"}}, "wait"),
        ({"type": "n8n-nodes-base.wait", "typeVersion": 1.1, "parameters": {"resume": "specificTime"}}, "wait"),
        (
            {"type": "n8n-nodes-base.wait", "typeVersion": 1.1, "parameters": {"amount": 2, "unit": "hours"}},
            "wait",
        ),
        ({"type": "n8n-nodes-base.wait", "typeVersion": 1, "parameters": {}}, "wait"),  # v1: 1 hour by default
        (
            {
                "type": "n8n-nodes-base.wait",
                "typeVersion": 1.1,
                "parameters": {"amount": "={{ 86400 }}", "unit": "seconds"},
            },
            "wait",
        ),
        # A second Webhook node would be a trigger Harvis does not run (and a path it did not choose).
        ({**WEBHOOK}, "one Webhook"),
    ],
)
def test_dangerous_modes_of_allowed_nodes_are_refused(node: dict[str, Any], needle: str) -> None:
    assert needle in refused(with_node(node))


def test_error_workflow_setting_is_refused() -> None:
    # settings.errorWorkflow names a workflow n8n runs on failure: maybe someone else's.
    wf = with_node(set_value("x"), settings={"errorWorkflow": "42"})
    assert "errorWorkflow" in refused(wf)


def test_other_settings_are_dropped() -> None:
    wf = with_node(set_value("x"), settings={"callerPolicy": "any", "saveDataSuccessExecution": "none"})
    assert validate_workflow(wf)["settings"] == {"executionOrder": "v1"}


# ---------------------------------------------------------------- credentials


@pytest.mark.parametrize(
    "node",
    [
        {
            "type": "n8n-nodes-base.httpRequest",
            "typeVersion": 4.2,
            "parameters": {"url": "https://example.com/"},
            "credentials": {"httpHeaderAuth": {"id": "1", "name": "someone else's token"}},
        },
        {
            "type": "n8n-nodes-base.httpRequest",
            "typeVersion": 4.2,
            "parameters": {
                "url": "https://example.com/",
                "authentication": "genericCredentialType",
                "genericAuthType": "httpHeaderAuth",
            },
        },
        {
            "type": "n8n-nodes-base.httpRequest",
            "typeVersion": 4.2,
            "parameters": {
                "url": "https://example.com/",
                "authentication": "predefinedCredentialType",
                "nodeCredentialType": "slackApi",
            },
        },
        {"type": "n8n-nodes-base.respondToWebhook", "typeVersion": 1.1, "parameters": {"respondWith": "jwt"}},
    ],
)
def test_stored_credentials_are_refused(node: dict[str, Any]) -> None:
    assert "credential" in refused(with_node(node))


def test_credentials_on_the_webhook_are_refused() -> None:
    wf = with_node(set_value("x"))
    wf["nodes"][0] = {**WEBHOOK, "parameters": {"authentication": "basicAuth"}, "credentials": {"httpBasicAuth": {}}}
    assert "credential" in refused(wf)


# ---------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    "expression",
    [
        "={{ this.constructor.constructor('return process')().mainModule.require('child_process').execSync('id') }}",
        "={{ (() => process.env)() }}",
        "={{ require('fs').readFileSync('/etc/passwd') }}",
        "={{ $json.constructor }}",
        "={{ ({}).__proto__ }}",
        "={{ Object.prototype }}",
        "={{ Object.getPrototypeOf($json) }}",
        "={{ globalThis }}",
        "={{ Function('return 1')() }}",
        "={{ eval('1') }}",
        "={{ import('fs') }}",
        "={{ `${'constr'}uctor` }}",
        "={{ $json['\\x63onstructor'] }}",
        "={{ $json['\\u0063onstructor'] }}",
        "={{ String.fromCharCode(99, 111) }}",
        "={{ $env.HOME }}",
        "={{ $vars.anything }}",
        "={{ $evaluateExpression($json.body.code) }}",
        "={{ Reflect.ownKeys($json) }}",
        "={{ Error.prepareStackTrace }}",
        "=Hello {{ this }}",
        "=ok {{ 1 }} then {{ process }}",
        "={{ $json.a \\}} + this.x }}",  # tournament keeps an escaped }} inside the code
    ],
)
def test_expression_sandbox_escapes_are_refused(expression: str) -> None:
    message = refused(with_node(set_value(expression)))
    assert "expression" in message


def test_escapes_are_found_anywhere_in_the_parameters() -> None:
    node = {
        "type": "n8n-nodes-base.httpRequest",
        "typeVersion": 4.2,
        "parameters": {
            "url": "https://example.com/",
            "sendHeaders": True,
            "headerParameters": {"parameters": [{"name": "X", "value": "={{ process.env.JWT_SECRET }}"}]},
        },
    }
    assert "expression" in refused(with_node(node))


@pytest.mark.parametrize(
    "expression",
    [
        "={{ $json.body.name }}",
        "=Hello, {{ $json.body.name }}! This is plain text, not code: process, this, constructor.",
        "={{ $json.body.numbers.reduce((a, b) => a + b, 0) }}",
        "={{ $input.first().json.items.map(i => i.price) }}",
        "={{ $now.toISO() }}",
        "={{ $json['first name'] }}",
        "={{ $('Webhook').item.json.body.processed }}",
        "={{ $jmespath($json, 'items[*].id') }}",
        "={{ $json.body.text.replace(/\\s+/g, ' ').toUpperCase() }}",
        "constructor, process and this without '=' are literal text",
    ],
)
def test_ordinary_expressions_pass(expression: str) -> None:
    validate_workflow(with_node(set_value(expression)))


# ---------------------------------------------------------------- what stays allowed


@pytest.mark.parametrize(
    "node",
    [
        {"type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2, "parameters": {"url": "https://example.com/"}},
        {"type": "n8n-nodes-base.if", "typeVersion": 2.2, "parameters": {}},
        {"type": "n8n-nodes-base.switch", "typeVersion": 3.2, "parameters": {}},
        {"type": "n8n-nodes-base.merge", "typeVersion": 3, "parameters": {"mode": "append"}},
        {"type": "n8n-nodes-base.filter", "typeVersion": 2.2, "parameters": {}},
        {"type": "n8n-nodes-base.sort", "typeVersion": 1, "parameters": {"type": "simple"}},
        {"type": "n8n-nodes-base.limit", "typeVersion": 1, "parameters": {"maxItems": 3}},
        {"type": "n8n-nodes-base.aggregate", "typeVersion": 1, "parameters": {}},
        {"type": "n8n-nodes-base.splitOut", "typeVersion": 1, "parameters": {"fieldToSplitOut": "items"}},
        {"type": "n8n-nodes-base.dateTime", "typeVersion": 2, "parameters": {}},
        {"type": "n8n-nodes-base.crypto", "typeVersion": 1, "parameters": {"action": "hash"}},
        {"type": "n8n-nodes-base.html", "typeVersion": 1.2, "parameters": {"operation": "extractHtmlContent"}},
        {"type": "n8n-nodes-base.markdown", "typeVersion": 1, "parameters": {}},
        {"type": "n8n-nodes-base.xml", "typeVersion": 1, "parameters": {}},
        {"type": "n8n-nodes-base.itemLists", "typeVersion": 3, "parameters": {"operation": "sort", "type": "simple"}},
        {"type": "n8n-nodes-base.noOp", "typeVersion": 1, "parameters": {}},
        {"type": "n8n-nodes-base.wait", "typeVersion": 1.1, "parameters": {}},  # v1.1: 5 s by default
        {"type": "n8n-nodes-base.wait", "typeVersion": 1.1, "parameters": {"amount": 20, "unit": "seconds"}},
        {"type": "n8n-nodes-base.respondToWebhook", "typeVersion": 1.1, "parameters": {"respondWith": "json"}},
        {"type": "n8n-nodes-base.stopAndError", "typeVersion": 1, "parameters": {}},
    ],
)
def test_safe_nodes_pass(node: dict[str, Any]) -> None:
    validate_workflow(with_node(node))


def test_a_manual_trigger_is_still_accepted() -> None:
    wf = {
        "name": "Manual",
        "nodes": [
            {"name": "Start", "type": "n8n-nodes-base.manualTrigger", "typeVersion": 1, "parameters": {}},
            {"name": "Set", **set_value("x")},
        ],
        "connections": {"Start": {"main": [[{"node": "Set"}]]}},
    }
    validate_workflow(wf)


def test_unsafe_workflows_can_still_be_reviewed() -> None:
    # optimize only reads a workflow (it never reaches n8n): it may look at any known node type.
    wf = with_node({"type": "n8n-nodes-base.rssFeedRead", "typeVersion": 1.1, "parameters": {"url": "x"}})
    assert validate_workflow(wf, safe=False)["nodes"][1]["type"] == "n8n-nodes-base.rssFeedRead"
