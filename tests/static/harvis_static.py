"""Readers shared by the static tests: Settings classes (by `ast`, the services'
dependencies are not installed here), .env.example, docs/configuration.md,
Dockerfiles and docker-compose.yaml."""

from __future__ import annotations

import ast
import json
import re
import shutil
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MICRO = ROOT / "microservices"
COMMON_CONFIG = MICRO / "common" / "harvis_common" / "config.py"
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
CONFIG_DOC = ROOT / "docs" / "configuration.md"

sys.path.insert(0, str(ROOT / "scripts"))
from fleet_services import SERVICES, Service  # noqa: E402

# Services compose runs that are not ours (not in the fleet table).
INFRA_SERVICES = frozenset({"nginx", "postgres", "redis", "ollama", "ollama-gpu", "n8n", "prometheus"})

# Must be given to compose, which refuses to start without them (`${VAR:?message}`).
REQUIRED_SECRETS = (
    "JWT_SECRET",
    "INTERNAL_AUTH_PRIVATE_KEY",
    "INTERNAL_AUTH_PUBLIC_KEY",
    "POSTGRES_PASSWORD",
    "API_KEY_ENCRYPTION_KEY",
)
_SECRET_RE = re.compile(r"(SECRET|PASSWORD|PASSWD|PRIVATE_KEY|PUBLIC_KEY|API_KEY|ENCRYPTION_KEY|_TOKEN$)")

# Variables compose itself reads from .env (not interpolated, not passed to a service).
COMPOSE_NATIVE_VARS = frozenset({"COMPOSE_PROFILES"})


def tool(name: str) -> str:
    """A tool from the venv running the tests, else from PATH (a missing one fails the test)."""
    import pytest

    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (it is in requirements-dev.txt)")
    return found


def is_secret(name: str) -> bool:
    """Names that hold key material or credentials (the public key included: it is not
    confidential, but a default one would let anyone who knows it be trusted)."""
    return bool(_SECRET_RE.search(name))


# ---------------------------------------------------------------- Settings classes (ast)

_SETTINGS_ROOTS = {"BaseSettings", "ServiceSettings"}
_MISSING = object()


@dataclass(frozen=True)
class SettingField:
    env: str  # the environment variable
    attr: str  # the Python attribute
    owner: str  # "module:Class" that declares it
    annotation: str
    default: Any  # a Python value, or REQUIRED / COMPUTED markers below
    default_src: str  # the expression as written


REQUIRED = "<required>"
COMPUTED = "<computed>"


def _const_eval(node: ast.expr) -> Any:
    """Literals and arithmetic on them (`60 * 24`); _MISSING for anything else."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if isinstance(node, ast.BinOp):
        left, right = _const_eval(node.left), _const_eval(node.right)
        if isinstance(left, int | float) and isinstance(right, int | float):
            ops = {
                ast.Add: lambda a, b: a + b,
                ast.Sub: lambda a, b: a - b,
                ast.Mult: lambda a, b: a * b,
                ast.Div: lambda a, b: a / b,
                ast.FloorDiv: lambda a, b: a // b,
            }
            op = ops.get(type(node.op))
            if op is not None:
                return op(left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _const_eval(node.operand)
        if isinstance(value, int | float):
            return -value
    return _MISSING


def _call_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


@dataclass
class _Class:
    module: str
    node: ast.ClassDef

    @property
    def bases(self) -> list[str]:
        return [_call_name(b) for b in self.node.bases]

    def env_prefix(self) -> str | None:
        for stmt in self.node.body:
            target = None
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, value = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                target, value = stmt.target, stmt.value
            if isinstance(target, ast.Name) and target.id == "model_config" and isinstance(value, ast.Call):
                prefix = _kw(value, "env_prefix")
                if prefix is not None:
                    return str(_const_eval(prefix))
        return None

    def own_fields(self, prefix: str) -> list[SettingField]:
        fields = []
        for stmt in self.node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            attr = stmt.target.id
            annotation = ast.unparse(stmt.annotation)
            if attr.startswith("_") or attr == "model_config" or annotation.startswith(("ClassVar", "typing.ClassVar")):
                continue
            env = (prefix + attr).upper()
            default: Any = REQUIRED
            default_src = ""
            value = stmt.value
            if value is not None and _call_name(value) == "Field" and isinstance(value, ast.Call):
                alias = _kw(value, "validation_alias") or _kw(value, "alias")
                if alias is not None and isinstance(_const_eval(alias), str):
                    env = _const_eval(alias).upper()
                if _kw(value, "default_factory") is not None:
                    default, default_src = COMPUTED, ast.unparse(_kw(value, "default_factory"))
                else:
                    expr = _kw(value, "default") or (value.args[0] if value.args else None)
                    if expr is not None and not (isinstance(expr, ast.Constant) and expr.value is Ellipsis):
                        default_src = ast.unparse(expr)
                        default = _const_eval(expr)
                        if default is _MISSING:
                            default = COMPUTED
            elif value is not None:
                default_src = ast.unparse(value)
                default = _const_eval(value)
                if default is _MISSING:
                    default = COMPUTED
            fields.append(SettingField(env, attr, f"{self.module}:{self.node.name}", annotation, default, default_src))
        return fields


def _classes_in(paths: list[Path]) -> dict[str, _Class]:
    found: dict[str, _Class] = {}
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module = path.relative_to(ROOT).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, _Class(module, node))
    return found


def _package_files(svc: Service) -> list[Path]:
    pkg = MICRO / svc.directory / svc.package
    return sorted(p for p in pkg.rglob("*.py") if "tests" not in p.relative_to(pkg).parts)


@cache
def settings_fields(service_name: str) -> dict[str, SettingField]:
    """Every environment variable the service's Settings classes read, by name."""
    svc = next(s for s in SERVICES if s.name == service_name)
    common = _classes_in([COMMON_CONFIG])
    local = _classes_in(_package_files(svc))
    classes = {**common, **local}

    def is_settings(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name in _SETTINGS_ROOTS:
            return True
        cls = classes.get(name)
        if cls is None or name in seen:
            return False
        return any(is_settings(b, seen | {name}) for b in cls.bases)

    def mro(name: str) -> list[_Class]:
        cls = classes.get(name)
        if cls is None:
            return []
        chain: list[_Class] = []
        for base in cls.bases:
            for c in mro(base):
                if c not in chain:
                    chain.append(c)
        return [*chain, cls]

    result: dict[str, SettingField] = {}
    for name, cls in local.items():
        if not any(is_settings(b) for b in cls.bases):
            continue
        chain = mro(name)
        prefix = next((p for c in reversed(chain) if (p := c.env_prefix()) is not None), "")
        by_attr: dict[str, SettingField] = {}
        for c in chain:  # base classes first, so subclasses override
            for f in c.own_fields(prefix):
                by_attr[f.attr] = f
        for f in by_attr.values():
            result[f.env] = f
    return result


def all_settings() -> dict[str, dict[str, SettingField]]:
    """{ENV_VAR: {service name: field}} over the fleet."""
    table: dict[str, dict[str, SettingField]] = {}
    for svc in SERVICES:
        for env, f in settings_fields(svc.name).items():
            table.setdefault(env, {})[svc.name] = f
    return table


def env_value(default: Any) -> str:
    """A default as it is written in an env file."""
    if default is True or default is False:
        return str(default).lower()
    if default is None:
        return ""
    return str(default)


# ---------------------------------------------------------------- .env.example

_ENV_LINE = re.compile(r"^(#\s?)?([A-Z][A-Z0-9_]*)=(.*)$")


@dataclass(frozen=True)
class EnvEntry:
    name: str
    value: str
    active: bool  # not commented out
    line: int


@cache
def env_example() -> dict[str, EnvEntry]:
    entries: dict[str, EnvEntry] = {}
    for n, raw in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        m = _ENV_LINE.match(raw.strip())
        if not m:
            continue
        name = m.group(2)
        if name in entries:
            raise AssertionError(f".env.example:{n}: {name} is listed twice (also line {entries[name].line})")
        entries[name] = EnvEntry(name, m.group(3), m.group(1) is None, n)
    return entries


# ---------------------------------------------------------------- docs/configuration.md


@dataclass(frozen=True)
class DocRow:
    name: str
    services: str
    default: str
    meaning: str


def _cell(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == "`" and text[-1] == "`":
        text = text[1:-1]
    return text


@cache
def config_doc() -> dict[str, DocRow]:
    rows: dict[str, DocRow] = {}
    for raw in CONFIG_DOC.read_text(encoding="utf-8").splitlines():
        if not raw.startswith("| `"):
            continue
        cells = [c for c in re.split(r"(?<!\\)\|", raw.strip())[1:-1]]
        if len(cells) < 4:
            continue
        name = _cell(cells[0])
        rows[name] = DocRow(name, cells[1].strip(), _cell(cells[2]), cells[3].strip())
    return rows


# ---------------------------------------------------------------- docker-compose.yaml


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def compose_strings() -> str:
    """Every string value of the compose file (what compose interpolates; comments are not)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            out.append(node)

    walk(compose())
    return "\n".join(out)


def service_env(service: dict[str, Any]) -> dict[str, str | None]:
    """`environment:` as a mapping; None marks a bare (pass-through) name."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out: dict[str, str | None] = {}
        for item in env:
            name, sep, value = str(item).partition("=")
            out[name] = value if sep else None
        return out
    return {k: (None if v is None else str(v)) for k, v in env.items()}


_INTERP = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Interpolation:
    name: str
    op: str  # "", ":-", "-", ":?", "?", ":+", "+"
    arg: str
    text: str


def interpolations(text: str) -> list[Interpolation]:
    text = text.replace("$$", "")  # escaped dollars are literal
    found = []
    for m in _INTERP.finditer(text):
        if m.group(4):
            found.append(Interpolation(m.group(4), "", "", m.group(0)))
        else:
            found.append(Interpolation(m.group(1), m.group(2) or "", m.group(3) or "", m.group(0)))
    return found


def published_ports(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host port, container port) of each `ports:` entry."""
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            out.append((str(entry.get("published", "")), str(entry.get("target", ""))))
        else:
            spec = str(entry).split("/")[0]
            parts = spec.rsplit(":", 2)
            target = parts[-1]
            host = parts[-2] if len(parts) >= 2 else ""
            out.append((host, target))
    return out


def service_networks(service: dict[str, Any]) -> set[str]:
    nets = service.get("networks") or []
    return set(nets) if isinstance(nets, list) else set(nets.keys())


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: {} for d in deps}
    return {k: (v or {}) for k, v in deps.items()}


def healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, list):
        return " ".join(str(t) for t in test)
    return str(test or "")


_HEALTH_URL = re.compile(r"https?://(?:127\.0\.0\.1|localhost):(\d+)(/[^'\"\s)]*)")


def health_urls(text: str) -> list[tuple[int, str]]:
    return [(int(port), path) for port, path in _HEALTH_URL.findall(text)]


# ---------------------------------------------------------------- Dockerfiles


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int  # index of the FROM it belongs to


def dockerfile_path(svc: Service) -> Path:
    return MICRO / svc.directory / "Dockerfile"


def dockerfile(svc: Service) -> list[Instruction]:
    return dockerfile_at(dockerfile_path(svc))


BASE_DOCKERFILE = MICRO / "base" / "Dockerfile"


def dockerfile_at(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (stage -1: before any FROM)."""
    logical: list[str] = []
    current = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        current += line
        if current.strip():
            logical.append(current.strip())
        current = ""
    if current.strip():
        logical.append(current.strip())
    out: list[Instruction] = []
    stage = -1
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
    return out


def exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None
