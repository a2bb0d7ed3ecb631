"""The contract check CI runs notices a stale gen/ and a breaking change."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support import ROOT
from tools import check_contracts

_WORKSPACE = ("buf.yaml", "buf.gen.yaml", "proto", "third_party", "tools", "gen", "envoy")


def _copy_workspace(target: Path) -> Path:
    for name in _WORKSPACE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    return target


def test_current_generated_code_passes(tmp_path: Path) -> None:
    workspace = _copy_workspace(tmp_path)
    assert check_contracts.check_generated_code(workspace) == []


def test_a_contract_edit_without_regeneration_is_reported(tmp_path: Path) -> None:
    workspace = _copy_workspace(tmp_path)
    proto = workspace / "proto/tradeflow/ml/v1/prediction.proto"
    proto.write_text(
        proto.read_text().replace(
            "  string correlation_id = 5;\n",
            "  string correlation_id = 5;\n  // Added without regenerating.\n  string model = 6;\n",
        )
    )
    problems = check_contracts.check_generated_code(workspace)
    assert "gen/tradeflow/ml/v1/prediction_pb2.py is stale or missing" in problems[0]
    assert any("trading_engine.binpb is stale" in problem for problem in problems)
    assert any("openapi.json is stale" in problem for problem in problems)


def test_a_comment_edit_without_regeneration_leaves_the_openapi_document_stale(
    tmp_path: Path,
) -> None:
    workspace = _copy_workspace(tmp_path)
    proto = workspace / "proto/tradeflow/trading/v1/trading_engine_service.proto"
    proto.write_text(
        proto.read_text().replace(
            "// Reports the engine's health with real figures; needs no token.",
            "// Reports the engine's health; needs no token.",
        )
    )
    problems = check_contracts.check_generated_code(workspace)
    assert any("envoy/openapi.json is stale" in problem for problem in problems)


def test_a_removed_field_is_a_breaking_change(tmp_path: Path) -> None:
    workspace = _copy_workspace(tmp_path)

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=workspace, check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "contracts")
    proto = workspace / "proto/tradeflow/ml/v1/prediction.proto"
    proto.write_text(proto.read_text().replace("  string correlation_id = 5;\n", ""))
    problems = check_contracts.check_breaking(workspace)
    assert len(problems) == 1
    assert "correlation_id" in problems[0]
