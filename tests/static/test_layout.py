"""One shape for every service (docs/development.md), and one route manifest each.

The manifests are what core-api's gateway routes by; these checks keep them, the READMEs'
route tables and the core-api image in agreement. Whether each service's routes really
fall under its manifest is checked against the running app by the contract tests
(microservices/common/contract_tests) and core-api's own tests.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from harvis_static import MICRO, ROOT, SERVICES, Service, dockerfile

sys.path.insert(0, str(MICRO / "common"))
from harvis_common.manifest import MANIFEST_FILE, load

BACKENDS = [s for s in SERVICES if s.name != "core-api"]
README_SECTIONS = ("## Routes", "## Layout", "## Settings", "## Tests")
MAX_ROUTE_MODULE_LINES = 300


def package(svc: Service) -> Path:
    return MICRO / svc.directory / svc.package


def runtime_modules() -> list[Path]:
    return [p for svc in SERVICES for p in package(svc).rglob("*.py")] + list(
        (MICRO / "common" / "harvis_common").rglob("*.py")
    )


# ---------------------------------------------------------------- manifests


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_every_service_has_a_manifest_that_agrees_with_the_fleet(svc: Service) -> None:
    manifest = load(MICRO / svc.directory / MANIFEST_FILE)
    assert (manifest.service, manifest.port) == (svc.name, svc.port)
    assert manifest.prefixes and all(p.startswith("/api/") for p in manifest.prefixes)


def test_no_prefix_belongs_to_two_services() -> None:
    owner: dict[str, str] = {}
    for svc in SERVICES:
        for prefix in load(MICRO / svc.directory / MANIFEST_FILE).prefixes:
            for other, name in owner.items():
                nested = prefix == other or prefix.startswith(other + "/") or other.startswith(prefix + "/")
                assert not nested or name == svc.name, f"{prefix} ({svc.name}) overlaps {other} ({name})"
            owner[prefix] = svc.name


def test_route_tables_are_generated_from_the_manifests() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "route_table.py")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr + "\nrun: python3 scripts/route_table.py --write"


def test_core_api_image_carries_every_manifest() -> None:
    core = next(s for s in SERVICES if s.name == "core-api")
    instructions = dockerfile(core)
    copies = {i.args for i in instructions if i.keyword == "COPY"}
    for svc in BACKENDS:
        assert f"{svc.directory}/{MANIFEST_FILE} /app/manifests/{svc.name}/" in copies, svc.name
    assert any(i.keyword == "ENV" and "SERVICE_MANIFESTS_PATH=/app/manifests" in i.args for i in instructions)


# ---------------------------------------------------------------- the skeleton


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_every_service_has_the_same_skeleton(svc: Service) -> None:
    pkg = package(svc)
    for name in ("main.py", "app.py", "settings.py", "api/__init__.py", "api/deps.py", "api/routes/__init__.py"):
        assert (pkg / name).is_file(), f"{svc.name}: {svc.package}/{name} is missing"
    assert (pkg / "store.py").is_file() or (pkg / "store").is_dir(), f"{svc.name}: no store.py or store/"
    routes = [p for p in (pkg / "api" / "routes").glob("*.py") if p.name != "__init__.py"]
    assert routes, f"{svc.name}: api/routes/ holds no route module"
    tree = ast.parse((pkg / "app.py").read_text(encoding="utf-8"))
    assert any(isinstance(n, ast.FunctionDef) and n.name == "create_app" for n in tree.body), svc.name


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_main_only_serves_the_app(svc: Service) -> None:
    # The factory lives in app.py; main.py is the instance uvicorn serves, nothing else.
    tree = ast.parse((package(svc) / "main.py").read_text(encoding="utf-8"))
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    assert not defs, f"{svc.name}: main.py defines {[d.name for d in defs]}"
    targets = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert "app" in targets


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_route_modules_stay_small(svc: Service) -> None:
    for path in (package(svc) / "api" / "routes").glob("*.py"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_ROUTE_MODULE_LINES, f"{path.relative_to(ROOT)}: {lines} lines; split it by area"


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_every_service_has_a_readme_with_the_sections(svc: Service) -> None:
    path = MICRO / svc.directory / "README.md"
    assert path.is_file(), f"{svc.name}: README.md is missing"
    text = path.read_text(encoding="utf-8")
    headings = [h for h in README_SECTIONS if re.search(rf"^{re.escape(h)}\s*$", text, re.M)]
    assert headings == list(README_SECTIONS), f"{svc.name}: README needs {README_SECTIONS} in this order"


def test_the_test_kit_is_not_shipped() -> None:
    # harvis_testkit sits beside harvis_common but isn't part of the installed package.
    offenders = [
        str(p.relative_to(ROOT)) for p in runtime_modules() if "harvis_testkit" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
    pyproject = (MICRO / "common" / "pyproject.toml").read_text(encoding="utf-8")
    assert 'include = ["harvis_common*"]' in pyproject


def test_no_links_leave_the_repository() -> None:
    # The contract and every document a reader follows are in the repository.
    for doc in [
        ROOT / "README.md",
        *(MICRO / s.directory / "README.md" for s in SERVICES),
        *(ROOT / "docs").glob("*.md"),
    ]:
        if not doc.exists():
            continue
        for target in re.findall(r"\]\(([^)#\s]+)", doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+://", target):
                continue
            resolved = (doc.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{doc.relative_to(ROOT)} links outside: {target}"
            assert resolved.exists(), f"{doc.relative_to(ROOT)} links to a missing file: {target}"
