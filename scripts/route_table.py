#!/usr/bin/env python3
"""The route tables in README.md and each service's README, made from the services'
manifest.toml files (the same files core-api's gateway routes by).

    python3 scripts/route_table.py           # exit 1 and name the tables that are stale
    python3 scripts/route_table.py --write   # rewrite them

Each table sits between a `<!-- routes: … -->` line and `<!-- /routes -->`.
Stdlib only (tomllib), like the runner.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICRO = ROOT / "microservices"
sys.path.insert(0, str(MICRO / "common"))
sys.path.insert(0, str(ROOT / "scripts"))

from fleet_services import SERVICES  # noqa: E402

from harvis_common.manifest import MANIFEST_FILE, Manifest, load  # noqa: E402

BLOCK = re.compile(r"(<!-- routes: [^\n]*-->\n)(.*?)(<!-- /routes -->)", re.S)
WHY = {
    "sse": "streams Server-Sent Events",
    "websocket": "WebSocket",
    "model": "waits on a model",
    "job": "waits on a sandboxed run or a workflow",
}


def manifests() -> dict[str, Manifest]:
    return {svc.name: load(MICRO / svc.directory / MANIFEST_FILE) for svc in SERVICES}


def _code(items: list[str] | tuple[str, ...]) -> str:
    return ", ".join(f"`{i}`" for i in items)


def fleet_table(all_: dict[str, Manifest]) -> str:
    rows = ["| Service | Port | Path prefixes | Long routes (the gateway's long read timeout) |", "|---|---|---|---|"]
    for name, m in all_.items():
        rows.append(f"| {name} | {m.port} | {_code(m.prefixes)} | {_code(sorted(m.long)) or '—'} |")
    return "\n".join(rows) + "\n"


def service_table(m: Manifest) -> str:
    lines = [f"Port {m.port}. Path prefixes: {_code(m.prefixes)}.", ""]
    if m.long:
        lines += ["| Long route | Why |", "|---|---|"]
        lines += [f"| `{t}` | {WHY[k]} |" for t, k in sorted(m.long.items())]
    else:
        lines.append("No long routes: every route answers within the gateway's plain read timeout.")
    return "\n".join(lines) + "\n"


def expected() -> dict[Path, str]:
    all_ = manifests()
    out = {ROOT / "README.md": fleet_table(all_)}
    for svc in SERVICES:
        out[MICRO / svc.directory / "README.md"] = service_table(all_[svc.name])
    return out


def render(text: str, table: str) -> str | None:
    """`text` with its routes block replaced, or None when it has no block."""
    if not BLOCK.search(text):
        return None
    return BLOCK.sub(lambda m: m.group(1) + table + m.group(3), text, count=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the stale tables")
    args = parser.parse_args()
    bad = []
    for path, table in expected().items():
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        new = render(text, table)
        if new is None:
            bad.append(f"{path.relative_to(ROOT)}: no <!-- routes: … --> … <!-- /routes --> block")
        elif new != text:
            if args.write:
                path.write_text(new, encoding="utf-8")
                print(f"wrote {path.relative_to(ROOT)}")
            else:
                bad.append(f"{path.relative_to(ROOT)}: the routes table is stale")
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
