#!/usr/bin/env python3
"""Re-lock runtime/container-requirements.txt: check the pins are a closed set, write the hashes.

Edit the ``name==version`` pins in the file (the image's whole dependency closure), then run

    .venv/bin/python scripts/lock_container_requirements.py

It asks pip's resolver, for the image's Python on Linux x86_64 and aarch64 (wheels only, as the
Dockerfile installs them), which distributions the pins need; it fails if that is not exactly the
pinned set (a missing dependency, or a pin nothing needs), and otherwise rewrites the file with
the sha256 of every wheel the image may install, so ``pip install --require-hashes`` in the image
refuses anything else. Nothing is installed; pip downloads only the packages' metadata.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO_ROOT / "runtime" / "container-requirements.txt"
DOCKERFILE = REPO_ROOT / "Dockerfile"
# glibc of the base image's Debian release (bookworm: 2.36) down to manylinux2014's 2.17.
GLIBC_MINORS = range(36, 16, -1)
ARCHITECTURES = ("x86_64", "aarch64")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
_BASE_PYTHON = re.compile(r"^FROM python:(\d+)\.(\d+)\.\d+-", re.M)

HEADER = """\
# The container image's Python dependencies (Dockerfile): the service and the queue worker.
# The complete closure, every version pinned and every wheel hashed for CPython {python} on Linux
# x86_64 and aarch64; the image installs it with --require-hashes --only-binary=:all: --no-deps.
# To change a version: edit the pin, then run scripts/lock_container_requirements.py, which
# checks that the set is closed and rewrites the hashes.
"""


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def python_version() -> str:
    match = _BASE_PYTHON.search(DOCKERFILE.read_text(encoding="utf-8"))
    if match is None:
        raise SystemExit(f"{DOCKERFILE}: no 'FROM python:X.Y.Z-...' line")
    return f"{match.group(1)}.{match.group(2)}"


def resolve(pins: dict[str, str], python: str, arch: str) -> dict[str, tuple[str, str, str]]:
    """name -> (version, wheel file name, sha256) as pip would install it on ``arch``."""
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in GLIBC_MINORS]
    platforms += [f"manylinux2014_{arch}"]
    if arch == "x86_64":
        platforms += ["manylinux2010_x86_64", "manylinux1_x86_64", "manylinux_2_5_x86_64"]
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "pins.txt"
        requirements.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
        report = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
            "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
            "--abi", "cp" + python.replace(".", ""), "--target", str(Path(tmp) / "target"),
            "--report", str(report), "-r", str(requirements),
            *[arg for platform in platforms for arg in ("--platform", platform)],
        ]  # fmt: skip
        subprocess.run(command, check=True)
        installs = json.loads(report.read_text())["install"]
    resolved = {}
    for item in installs:
        info = item["download_info"]
        resolved[normalise(item["metadata"]["name"])] = (
            item["metadata"]["version"],
            info["url"].rsplit("/", 1)[1],
            info["archive_info"]["hashes"]["sha256"],
        )
    return resolved


def main() -> int:
    pins = read_pins(REQUIREMENTS)
    python = python_version()
    hashes: dict[str, set[str]] = {name: set() for name in pins}
    for arch in ARCHITECTURES:
        resolved = resolve(pins, python, arch)
        if set(resolved) != set(pins):
            missing = sorted(set(resolved) - set(pins))
            unneeded = sorted(set(pins) - set(resolved))
            print(f"{arch}: not a closed set; add {missing}, remove {unneeded}", file=sys.stderr)
            return 1
        for name, (version, wheel, sha256) in resolved.items():
            if version != pins[name]:
                print(f"{arch}: {name} resolved to {version}, pinned {pins[name]}", file=sys.stderr)
                return 1
            print(f"{arch}: {wheel}")
            hashes[name].add(sha256)
    lines = [HEADER.format(python=python)]
    for name in sorted(pins):
        digests = sorted(hashes[name])
        lines.append(f"{name}=={pins[name]} \\\n")
        continued = " \\"
        lines.extend(
            f"    --hash=sha256:{digest}{continued if i < len(digests) - 1 else ''}\n"
            for i, digest in enumerate(digests)
        )
    REQUIREMENTS.write_text("".join(lines), encoding="utf-8")
    print(f"wrote {REQUIREMENTS.relative_to(REPO_ROOT)}: {len(pins)} distributions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
