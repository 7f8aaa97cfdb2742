"""Fuzzing the whole fleet through nginx :9000: schemathesis generates requests for every
operation of the merged OpenAPI document (/api/openapi.json: core-api's and each service's
routes) with a real user's token, and no answer may be a server error (≥ 500): bad input is
a 4xx. Seeded, so a failure reproduces; `.dev/test-logs/fuzz/` keeps the JUnit report.

Left out: `/api/auth/logout` (it would revoke the fuzzer's own token halfway).
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
from conftest import BASE_URL, LOG_DIR, Fleet, new_user

EXAMPLES_PER_OPERATION = 8
SEED = 20261207


def test_no_server_errors_through_the_gateway(fleet_proc: Fleet, client: httpx.Client) -> None:
    user = new_user(client)
    out = LOG_DIR / "fuzz"
    out.mkdir(parents=True, exist_ok=True)
    junit = out / "junit.xml"
    st = Path(sys.executable).parent / "st"
    cmd = [
        str(st), "run", f"{BASE_URL}/api/openapi.json",
        "--checks", "not_a_server_error",
        "--header", f"Authorization: Bearer {user.token}",
        "--max-examples", str(EXAMPLES_PER_OPERATION),
        "--seed", str(SEED),
        "--generation-database", "none",
        "--workers", "2",
        "--request-timeout", "240",  # model-bound routes on the CPU demo model take a while
        "--exclude-path", "/api/auth/logout",
        "--report", "junit", "--report-junit-path", str(junit),
        "--no-color",
    ]  # fmt: skip
    # cwd: schemathesis keeps its own state in ./.schemathesis
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, cwd=str(out))
    (out / "output.txt").write_text(run.stdout + run.stderr)
    assert junit.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    cases = list(ET.parse(junit).getroot().iter("testcase"))  # noqa: S314 - our own report
    doc = client.get("/api/openapi.json").json()
    operations = sum(1 for item in doc["paths"].values() for method in item if method != "parameters")
    # every operation of the document but the one left out was fuzzed
    assert len(cases) >= operations - 1, f"{len(cases)} of {operations} operations fuzzed:\n{run.stdout[-3000:]}"
    failed = []
    for case in cases:
        problem = case.find("failure")
        problem = problem if problem is not None else case.find("error")
        if problem is not None:
            failed.append(f"{case.get('name')}: {problem.get('message', '')[:300]}")
    assert not failed, "server errors (or fuzzer errors):\n" + "\n".join(failed) + "\n\n" + run.stdout[-6000:]
