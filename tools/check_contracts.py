"""Contract checks CI runs after `buf format` and `buf lint` (see `make check-contracts`).

1. `gen/`, the Envoy descriptor set and the OpenAPI document are what proto/ generates today.
2. No breaking change against the contracts of the previous commit.
3. The vendored googleapis sources equal those of the installed googleapis-common-protos.
4. Envoy accepts the rendered gateway configuration (`envoy --mode validate`).

Run from the repository root with the venv's tools on PATH: `python -m tools.check_contracts`.
"""

from __future__ import annotations

import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

import google.api

from tools import openapi_document
from trading_engine.config import GatewaySettings
from trading_engine.gateway.envoy import (
    DESCRIPTOR_SET,
    OPENAPI_DOCUMENT,
    envoy_binary,
    render_config,
)

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    failures = [
        failure
        for check in (
            check_generated_code,
            check_breaking,
            check_vendored_googleapis,
            check_envoy_config,
        )
        for failure in check(ROOT)
    ]
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    if not failures:
        print("contracts: generated code current, no breaking change, Envoy config valid")
    return 1 if failures else 0


def check_generated_code(root: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch)
        _run(root, "buf", "generate", "--output", str(fresh))
        _run(root, "buf", "build", "--exclude-source-info", "-o", str(fresh / DESCRIPTOR_SET))
        problems = [
            f"gen/{name} is stale or missing: run `make generate` and commit the result"
            for name in _differences(fresh / "gen", root / "gen")
        ]
        if (fresh / DESCRIPTOR_SET).read_bytes() != (root / "envoy" / DESCRIPTOR_SET).read_bytes():
            problems.append(f"envoy/{DESCRIPTOR_SET} is stale: run `make generate` and commit it")
        committed = root / "envoy" / OPENAPI_DOCUMENT
        fresh_document = openapi_document.render(openapi_document.descriptor_set(root))
        if not committed.is_file() or committed.read_text() != fresh_document:
            problems.append(f"envoy/{OPENAPI_DOCUMENT} is stale: run `make generate` and commit it")
        return problems


def _differences(expected: Path, actual: Path) -> list[str]:
    expected_files = {p.relative_to(expected) for p in expected.rglob("*") if p.is_file()}
    actual_files = {
        p.relative_to(actual)
        for p in actual.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    differing = {
        name
        for name in expected_files & actual_files
        if not filecmp.cmp(expected / name, actual / name, shallow=False)
    }
    return sorted(str(name) for name in (expected_files ^ actual_files) | differing)


def check_breaking(root: Path) -> list[str]:
    # Compare the change with its predecessor: uncommitted contract edits with
    # HEAD, otherwise HEAD with the commit before it.
    dirty = _run(root, "git", "status", "--porcelain", "--", "proto", check=False).stdout.strip()
    base = "HEAD" if dirty else "HEAD~1"
    if _run(root, "git", "cat-file", "-e", f"{base}:buf.yaml", check=False).returncode != 0:
        print(f"buf breaking: {base} has no contracts yet, nothing to compare with")
        return []
    result = _run(root, "buf", "breaking", "--against", f".git#ref={base}", check=False)
    if result.returncode != 0:
        return [f"breaking change against {base}:\n{result.stdout}{result.stderr}"]
    print(f"buf breaking: no breaking change against {base}")
    return []


def check_vendored_googleapis(root: Path) -> list[str]:
    vendored_root = root / "third_party" / "googleapis" / "google"
    installed = Path(next(iter(google.api.__path__))).parent
    return [
        f"{vendored.relative_to(root)} differs from googleapis-common-protos; copy it from {source}"
        for vendored in sorted(vendored_root.rglob("*.proto"))
        if not filecmp.cmp(
            vendored, source := installed / vendored.relative_to(vendored_root), shallow=False
        )
    ]


def check_envoy_config(root: Path) -> list[str]:
    settings = GatewaySettings(envoy_dir=root / "envoy")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as config:
        config.write(render_config(settings))
        config.flush()
        result = _run(
            root,
            str(envoy_binary()),
            "--mode",
            "validate",
            "--config-path",
            config.name,
            check=False,
        )
    if result.returncode != 0:
        return [f"envoy rejects the gateway config:\n{result.stdout}{result.stderr}"]
    print("envoy --mode validate: gateway config OK")
    return []


def _run(root: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result


if __name__ == "__main__":
    raise SystemExit(main())
