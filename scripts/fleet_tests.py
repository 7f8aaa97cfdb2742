"""`fleet.py test`: every suite, each in the environment it belongs to.

- lint: ruff over the whole tree.
- static: compose, Dockerfiles, configuration agreement (tools venv).
- unit: each service's tests inside that service's own venv, plus the shared
  service-contract tests run against every service app.
- e2e: the native fleet started for real, driven through nginx :9000.
- product: `make dev` itself, started as the README says, driven as a user would
  (tests/product/), and the slow optional parts' programs.

Results are collected from JUnit XML and summed into one closing line.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from fleet import (
    COMMON,
    MICRO,
    ROOT,
    all_venvs,
    ensure_apt,
    ensure_optional,
    ensure_system_packages,
    locked,
    say,
    service_env_pythonpath,
    tools_venv,
)
from fleet_services import NGINX_PORT, SERVICES
from images import CONTAINER_PACKAGES

# Debian tools the end-to-end tests use themselves: ffmpeg encodes the browser-like WebM/Opus
# recordings test_voice.py uploads.
E2E_TOOLS = ("ffmpeg",)
SUITES = ("lint", "static", "unit", "e2e", "product")


class Tally:
    def __init__(self) -> None:
        self.passed = self.failed = self.skipped = 0
        self.failures: list[str] = []

    def add_junit(self, path: Path, label: str) -> None:
        if not path.exists():
            self.failed += 1
            self.failures.append(f"{label}: no results (pytest crashed?)")
            return
        root = ET.parse(path).getroot()  # noqa: S314 - our own pytest output
        for case in root.iter("testcase"):
            name = f"{label}: {case.get('classname')}::{case.get('name')}"
            if case.find("failure") is not None or case.find("error") is not None:
                self.failed += 1
                self.failures.append(name)
            elif case.find("skipped") is not None:
                self.skipped += 1
            else:
                self.passed += 1

    def add_step(self, ok: bool, label: str) -> None:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append(label)


def _pytest(python: Path, args: list[str], label: str, tally: Tally, env: dict[str, str], cwd: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        say(f"pytest: {label}")
        code = subprocess.run(
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *args],
            env=env,
            cwd=str(cwd),
        ).returncode
        tally.add_junit(junit, label)
        if code not in (0, 1):  # usage error, internal error, or no tests collected
            tally.add_step(False, f"{label}: pytest exited {code}")


def run_lint(tally: Tally) -> None:
    ruff = tools_venv() / "bin" / "ruff"
    ok1 = subprocess.run([str(ruff), "check", "."], cwd=ROOT).returncode == 0
    ok2 = subprocess.run([str(ruff), "format", "--check", "."], cwd=ROOT).returncode == 0
    tally.add_step(ok1, "lint: ruff check")
    tally.add_step(ok2, "lint: ruff format --check")


def run_static(tally: Tally) -> None:
    tools = tools_venv()
    ensure_apt(["prometheus"])  # promtool: tests/static/test_prometheus.py checks and tests the alert rules
    # kubectl (kustomize) renders the Kubernetes overlays, nginx checks their nginx config
    # (tests/static/test_kubernetes.py).
    ensure_apt(["kubectl", "nginx-light"])
    env = {**os.environ, "PATH": f"{tools / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    _pytest(tools / "bin" / "python", ["tests/static"], "static", tally, env, ROOT)


def run_unit(tally: Tally, only: list[str]) -> None:
    venvs = all_venvs()
    ensure_system_packages()  # services' unit tests use their Debian packages too (bwrap, chromium…)
    for svc in SERVICES:
        if only and svc.name not in only:
            continue
        python = venvs[svc.name] / "bin" / "python"
        env = {**os.environ, "PYTHONPATH": service_env_pythonpath(svc)}
        own = MICRO / svc.directory / "tests"
        targets = [str(own)] if own.is_dir() else []
        if svc.name == "core-api":
            targets.append(str(COMMON / "tests"))  # the shared package's own tests, once
        else:
            env["HARVIS_SERVICE_APP"] = svc.app
            env["HARVIS_SERVICE_NAME"] = svc.name
            targets.append(str(COMMON / "contract_tests"))
        _pytest(python, targets, f"unit[{svc.name}]", tally, env, MICRO / svc.directory)


def fleet_lock():
    """One test fleet per machine at a time: it owns ports 8000-8006 and 9000 (a machine-wide
    lock, whatever cache or checkout a run uses)."""
    return locked(Path(tempfile.gettempdir()) / f"harvis-fleet-{NGINX_PORT}.lock")


def run_e2e(tally: Tally, extra: str = "") -> None:
    tools = tools_venv()
    ensure_optional()  # the demo model and n8n the e2e fleet runs, built before it starts
    ensure_apt(list(E2E_TOOLS))
    ensure_apt(["prometheus"])  # tests/e2e/test_observability.py runs it over the fleet
    with fleet_lock():
        _pytest(tools / "bin" / "python", shlex.split(extra) or ["tests/e2e"], "e2e", tally, dict(os.environ), ROOT)


def run_product(tally: Tally, extra: str = "") -> None:
    tools = tools_venv()
    ensure_optional()  # a warm cache: the first-run path is measured in bench/first_run.py
    ensure_apt(list(CONTAINER_PACKAGES))  # test_images.py builds and runs the images with podman
    with fleet_lock():
        args = shlex.split(extra) or ["tests/product"]
        _pytest(tools / "bin" / "python", ["-s", *args], "product", tally, dict(os.environ), ROOT)


def run_all(suites: list[str], e2e_args: str = "", services: list[str] | None = None) -> int:
    chosen = suites or list(SUITES)
    unknown = set(chosen) - set(SUITES)
    if unknown:
        say(f"unknown suite(s): {', '.join(sorted(unknown))}; choose from {', '.join(SUITES)}")
        return 2
    tally = Tally()
    for suite in chosen:
        if suite == "e2e":
            run_e2e(tally, e2e_args)
        elif suite == "product":
            run_product(tally, e2e_args)
        elif suite == "unit":
            run_unit(tally, services or [])
        else:
            {"lint": run_lint, "static": run_static}[suite](tally)
    if tally.failures:
        print("\nFailures:", *tally.failures, sep="\n  ")
    print(f"\n{tally.passed} passed, {tally.failed} failed, {tally.skipped} skipped", flush=True)
    return 1 if tally.failed or not tally.passed else 0


if __name__ == "__main__":
    sys.exit(run_all(sys.argv[1:]))
