"""What a workflow from an untrusted user may contain (issue 14: every user is a potential
attacker, and every user's workflow runs in the same n8n, under the same n8n owner).

- **Node types**: an allowlist of nodes that transform data, branch, wait briefly, answer
  the webhook, or make HTTP requests (through the vetting proxy, `harvis_common.ssrf_proxy`). Nothing
  that runs code or commands, touches files, reaches a database (ours share the network),
  calls another workflow or n8n's own API; no schedules (Harvis runs a workflow only when
  its user asks, counted against their hourly limit); anything unknown is refused too.
- **Modes** of allowed nodes that are code by another name: Merge's SQL mode (AlaSQL),
  Sort / Item Lists with a JavaScript comparator, the HTTP Request node's own proxy
  (a way around ours), waits on webhooks, dates or longer than `max_wait_s`.
- **Credentials**: none. n8n keeps credentials per instance, not per Harvis user, and
  Harvis has no API to create them: a node naming one would use whatever someone stored.
- **Expressions** (`={{ … }}` is JavaScript n8n evaluates in its own sandbox): code chunks,
  split exactly as n8n's tournament splits them, may not name the well-known sandbox
  escapes (constructor, prototype, process, require, this, Function, eval, import,
  Reflect…), hide names in escapes or template literals, or read instance-wide data
  ($env, $vars, $secrets). What remains — e.g. a member name computed at run time — is
  n8n's sandbox's to stop.
- **Settings**: only `executionOrder` and `timezone` are kept; `errorWorkflow` (run some
  other workflow on failure) is refused.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

from harvis_common.ssrf import SSRFBlocked, SSRFPolicy, check_url

BASE = "n8n-nodes-base."

# Node types safe for every user, with the typeVersion used when a workflow gives none
# (n8n 2.8's current versions). One list, in allowed_nodes.json: scripts/n8n_server.py and
# docker-compose.yaml load only these into n8n (NODES_INCLUDE), so n8n itself can't run
# anything else either (a Manual Trigger is accepted and replaced by a Webhook on create).
ALLOWED_NODE_TYPES: dict[str, float] = json.loads(
    resources.files("n8n_integration").joinpath("allowed_nodes.json").read_text(encoding="utf-8")
)
WEBHOOK_TYPE = BASE + "webhook"
SCHEDULE_TYPES = frozenset({BASE + "scheduleTrigger", BASE + "cron", BASE + "interval"})

_WHY: dict[str, str] = {}
for _t in ("code", "function", "functionItem", "aiTransform"):
    _WHY[BASE + _t] = "it runs code"
for _t in ("code", "toolCode", "agent", "chainLlm"):
    _WHY["@n8n/n8n-nodes-langchain." + _t] = "it runs code or a model with tools"
for _t in ("executeCommand", "ssh"):
    _WHY[BASE + _t] = "it runs commands on a server"
for _t in ("ftp", "readWriteFile", "readBinaryFile", "readBinaryFiles", "writeBinaryFile", "localFileTrigger", "git"):
    _WHY[BASE + _t] = "it reads or writes files"
for _t in (
    "postgres", "mySql", "redis", "mongoDb", "microsoftSql", "oracleDatabase", "questDb", "timescaleDb",
    "crateDb", "snowflake", "elasticsearch", "supabase", "redisTrigger", "postgresTrigger", "mySqlTrigger",
):  # fmt: skip
    _WHY[BASE + _t] = "it connects to a database (Harvis's own share the network)"
for _t in ("executeWorkflow", "executeWorkflowTrigger"):
    _WHY[BASE + _t] = "it runs another workflow (possibly another user's)"
_WHY[BASE + "n8n"] = "it calls n8n's own API, where every user's workflows live"
for _t in ("errorTrigger", "formTrigger", "emailReadImap"):
    _WHY[BASE + _t] = "Harvis runs workflows only through their webhook"
for _t in SCHEDULE_TYPES:
    _WHY[_t] = (
        "schedule triggers run a workflow with no one asking, outside the per-user execution limit;"
        " run it through POST /api/n8n/workflow/execute instead"
    )

CODE_PARAMETERS = ("jsCode", "pythonCode", "functionCode")
WAIT_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}

# Names that lead out of the expression sandbox or read instance-wide data. Matched as whole
# identifiers (`$json.processed` is fine, `$json.process` is not: a rare false positive).
BANNED_IDENTIFIERS = (
    "constructor", "__proto__", "prototype", "process", "require", "module", "globalThis", "global",
    "this", "Function", "AsyncFunction", "GeneratorFunction", "eval", "import", "Reflect", "Proxy",
    "getPrototypeOf", "setPrototypeOf", "defineProperty", "defineProperties", "getOwnPropertyDescriptor",
    "getOwnPropertyDescriptors", "__defineGetter__", "__defineSetter__", "__lookupGetter__",
    "__lookupSetter__", "prepareStackTrace", "captureStackTrace", "fromCharCode", "fromCodePoint", "atob",
    "unescape", "mainModule", "child_process", "Buffer", "WebAssembly", "Symbol", "setTimeout",
    "setInterval", "setImmediate", "queueMicrotask", "$env", "$vars", "$secrets", "$evaluateExpression",
)  # fmt: skip
_BANNED = re.compile(r"(?<![\w$])(" + "|".join(re.escape(w) for w in BANNED_IDENTIFIERS) + r")(?![\w$])")
# String escapes that could spell a banned name (`'\x63onstructor'`); `\s`, `\d`… in regexes pass.
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]|u[0-9a-fA-F{]|[0-7])")


def short(node_type: str) -> str:
    return node_type.removeprefix(BASE)


def type_problem(node_type: Any, where: str) -> str | None:
    """Why this node type is refused, or None when it is allowed."""
    if isinstance(node_type, str) and node_type in ALLOWED_NODE_TYPES:
        return None
    if isinstance(node_type, str) and node_type in _WHY:
        return f"{where}.type: node type {node_type!r} is not allowed: {_WHY[node_type]}"
    allowed = ", ".join(short(t) for t in ALLOWED_NODE_TYPES)
    return (
        f"{where}.type: node type {node_type!r} is not allowed (unknown, or not safe for every user;"
        f" Harvis workflows may use: {allowed})"
    )


# ---------------------------------------------------------------- expressions


def split_expression(expression: str) -> list[tuple[str, str]]:
    """[("text"|"code", chunk)] exactly as n8n's tournament splits an expression (the part
    after the leading "="): `{{` opens code, the next unescaped `}}` closes it; `\\}}` stays
    inside the code (its first occurrence unescaped, as tournament's escapeCode does)."""
    chunks: list[tuple[str, str]] = []
    looking_for, buffer, index = "{{", "", 0
    while index < len(expression):
        pos = expression.find(looking_for, index)
        if pos < 0:
            buffer += expression[index:]
            if looking_for == "{{":
                chunks.append(("text", buffer))
            else:
                chunks.append(("code", buffer.replace("\\}}", "}}", 1)))
            break
        before = expression[index:pos]
        backslashes = len(before) - len(before.rstrip("\\"))
        if backslashes % 2 == 1:  # escaped: part of the current chunk
            buffer += expression[index : pos + 2]
            index = pos + 2
            continue
        buffer += before
        if looking_for == "{{":
            chunks.append(("text", buffer.replace("\\\\", "\\")))
            looking_for = "}}"
        else:
            chunks.append(("code", buffer.replace("\\}}", "}}", 1)))
            looking_for = "{{"
        index, buffer = pos + 2, ""
    return chunks


def expression_problem(value: str) -> str | None:
    """Why this parameter value is refused, or None. Only values starting with "=" are
    expressions in n8n; of those, only the code chunks run."""
    if not value.startswith("="):
        return None
    for kind, code in split_expression(value[1:]):
        if kind != "code":
            continue
        found = _BANNED.search(code)
        if found:
            return f"uses {found.group(1)!r}"
        if "`" in code:
            return "uses a template literal (`…`)"
        if _ESCAPE.search(code):
            return "spells characters with string escapes (\\x…, \\u…)"
    return None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def expression_problems(params: dict[str, Any], where: str) -> list[str]:
    out = []
    for path, text in _strings(params, "parameters"):
        why = expression_problem(text)
        if why:
            snippet = text if len(text) <= 80 else text[:77] + "..."
            out.append(
                f"{where}.{path}: the expression {snippet!r} {why}, which Harvis refuses in expressions"
                " (a way out of n8n's expression sandbox)"
            )
    return out


# ---------------------------------------------------------------- node rules


def _wait_problem(node: dict[str, Any], params: dict[str, Any], max_wait_s: float) -> str | None:
    resume = params.get("resume", "timeInterval")
    if resume != "timeInterval":
        return f"a wait must be a time interval (resume {resume!r} is not allowed)"
    v1 = node.get("typeVersion") == 1
    amount = params.get("amount", 1 if v1 else 5)
    unit = params.get("unit", "hours" if v1 else "seconds")
    if isinstance(amount, bool) or not isinstance(amount, int | float) or unit not in WAIT_UNITS:
        return "a wait's amount must be a number and its unit seconds/minutes/hours/days (no expressions)"
    seconds = float(amount) * WAIT_UNITS[unit]
    if not 0 <= seconds <= max_wait_s:
        return f"a wait may last at most {max_wait_s:g} s (this one: {seconds:g} s)"
    return None


def node_problems(node: dict[str, Any], where: str, *, max_wait_s: float) -> list[str]:
    """Credentials and the dangerous modes of allowed node types."""
    out: list[str] = []
    ntype = node.get("type")
    params = node.get("parameters") if isinstance(node.get("parameters"), dict) else {}
    no_credentials = (
        "Harvis does not pass stored n8n credentials to workflows (they are shared by every user of"
        " this n8n); send secrets in the run's data instead"
    )
    if node.get("credentials"):
        out.append(f"{where}.credentials: credentials are not allowed: {no_credentials}")
    auth = params.get("authentication")
    if auth not in (None, "none") or params.get("nodeCredentialType") or params.get("genericAuthType"):
        out.append(f"{where}.parameters.authentication: {auth!r} needs stored credentials: {no_credentials}")
    if ntype == BASE + "respondToWebhook" and params.get("respondWith") == "jwt":
        out.append(f"{where}: answering with a JWT needs stored credentials: {no_credentials}")
    for name in CODE_PARAMETERS:
        if name in params:
            out.append(f"{where}.parameters.{name}: code is not allowed in Harvis workflows")
    if ntype in (BASE + "sort", BASE + "itemLists") and params.get("type") == "code":
        out.append(f"{where}: sorting with code (type 'code') is not allowed; use a simple sort")
    if ntype == BASE + "merge" and params.get("mode") == "combineBySql":
        out.append(f"{where}: the Merge node's SQL mode (combineBySql) is not allowed")
    if ntype == BASE + "httpRequest":
        options = params.get("options") if isinstance(params.get("options"), dict) else {}
        if params.get("proxy") or options.get("proxy"):
            out.append(
                f"{where}.parameters.options.proxy: a proxy of your own is not allowed"
                " (every request goes through Harvis's vetting proxy)"
            )
    if ntype == BASE + "wait":
        why = _wait_problem(node, params, max_wait_s)
        if why:
            out.append(f"{where}: {why}")
    return out


def settings_problems(settings: dict[str, Any]) -> list[str]:
    if settings.get("errorWorkflow"):
        return ["settings.errorWorkflow: running another workflow on failure is not allowed"]
    return []


def safe_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Only the settings that change nothing but this workflow's own behaviour."""
    out: dict[str, Any] = {"executionOrder": "v1"}
    if settings.get("executionOrder") in ("v0", "v1"):
        out["executionOrder"] = settings["executionOrder"]
    if isinstance(settings.get("timezone"), str) and len(settings["timezone"]) <= 64:
        out["timezone"] = settings["timezone"]
    return out


# ---------------------------------------------------------------- literal URLs


def literal_urls(wf: dict[str, Any]) -> list[tuple[str, str]]:
    """(node name, URL) of every HTTP Request node whose URL is written out (not an expression)."""
    out = []
    for node in wf.get("nodes", []):
        if node.get("type") != BASE + "httpRequest" or node.get("disabled"):
            continue
        url = (node.get("parameters") or {}).get("url")
        if isinstance(url, str) and not url.startswith("="):
            out.append((str(node.get("name")), url))
    return out


async def url_problems(wf: dict[str, Any], policy: SSRFPolicy, *, resolve_timeout_s: float = 5.0) -> list[str]:
    """The SSRF policy on literal URLs, at create time. A name that does not resolve (yet) is
    left to the proxy, which vets every request again when the workflow runs."""

    async def one(name: str, url: str) -> str | None:
        try:
            await asyncio.wait_for(check_url(url, policy), resolve_timeout_s)
        except TimeoutError:
            return None
        except SSRFBlocked as exc:
            if str(exc).startswith("cannot resolve host"):
                return None
            return f"node {name!r}: the URL {url[:200]!r} is not allowed: {exc}"
        return None

    found = await asyncio.gather(*(one(n, u) for n, u in literal_urls(wf)))
    return [p for p in found if p]
