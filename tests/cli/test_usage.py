"""The command line helps: each command's own usage on a mistake with what was meant, help
when run bare, short help with the rest a flag away, any case where it cannot mislead, and
Tab completion."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support import BIN
from trading_engine.cli import _parser


def _command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "trading-engine"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )


def test_a_wrong_flag_gives_the_subcommands_usage_and_the_flag_meant() -> None:
    wrong = _command("serve", "--grpc-prot", "50052")

    assert wrong.returncode == 2
    assert wrong.stderr.startswith("usage: trading-engine serve ")
    assert "trading-engine serve: error: unknown flag --grpc-prot; did you mean --grpc-port" in (
        wrong.stderr
    )
    # Nested commands too, and flags left out of the short help are still suggested.
    nested = _command("strategy", "history", "--limt", "3")
    assert nested.stderr.startswith("usage: trading-engine strategy history ")
    assert "unknown flag --limt; did you mean --limit?" in nested.stderr
    hidden = _command("serve", "--bus-dedupe-windw", "5")
    assert "did you mean --bus-dedupe-window?" in hidden.stderr


def test_a_near_miss_command_is_answered_with_the_command_meant() -> None:
    top = _command("sevre")
    assert top.returncode == 2
    assert "unknown command 'sevre'; did you mean serve?" in top.stderr
    choice = _command("risk-service", "--level", "extrme")
    assert "argument --level: invalid choice: 'extrme'; did you mean extreme?" in choice.stderr
    nested = _command("strategy", "dif")
    assert nested.stderr.startswith("usage: trading-engine strategy ")
    assert "unknown command 'dif'; did you mean diff?" in nested.stderr


def test_run_bare_a_command_shows_its_help_and_succeeds() -> None:
    bare = _command()
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout.startswith("usage: trading-engine ")
    assert "strategy get | set | diff | history | reset" in bare.stdout
    group = _command("strategy")
    assert group.returncode == 0
    assert "history" in group.stdout


def test_dev_help_is_short_and_help_all_lists_every_setting() -> None:
    # As an 80-column terminal shows it (argparse wraps to $COLUMNS).
    terminal = {**os.environ, "COLUMNS": "80"}
    short = _command("dev", "--help", env=terminal).stdout
    full = _command("dev", "--help-all", env=terminal).stdout
    # It was 234 lines at 100 columns, every setting listed.
    assert len(short.splitlines()) <= len(full.splitlines()) / 2, short
    assert "--help-all" in short
    assert "--bus-dedupe-window" not in short
    assert "--bus-dedupe-window" in full
    # Every port the stack binds is in the short help, the Envoy admin port included.
    for flag in ("--grpc-port", "--http-port", "--envoy-admin-port", "--metrics-port"):
        assert flag in short


def test_symbols_and_enum_values_are_taken_in_any_case() -> None:
    parser = _parser()
    watch = parser.parse_args(["watch", "--symbol", "eurusd", "--type", "weak_buy"])
    assert watch.symbol == ["EURUSD"]
    risk = parser.parse_args(["risk-service", "--level", "EXTREME"])
    assert risk.level == "extreme"
    serve = parser.parse_args(["serve", "--log-format", "JSON", "--environment", "Production"])
    assert (serve.log_format, serve.environment) == ("json", "production")
    layer = parser.parse_args(["strategy", "history", "--layer", "Adaptive"])
    assert layer.layer == "adaptive"


def test_publishs_former_flag_names_still_work_and_say_the_new_ones(tmp_path: Path) -> None:
    recording = tmp_path / "empty.jsonl"
    recording.write_text("")
    # Nothing listens on port 9: the old name is accepted, then the connection fails.
    old = _command("publish", str(recording), "--nats-url", "nats://127.0.0.1:9")
    assert "--nats-url is deprecated and will go: use --bus-nats-url" in old.stderr
    assert "unknown flag" not in old.stderr
    # A broker that is not there is said in one line, not a traceback.
    assert old.returncode == 1
    assert "trading-engine: nats: cannot connect to nats://127.0.0.1:9" in old.stderr
    assert "Traceback" not in old.stderr
    listed = _command("publish", "--help").stdout.partition("examples:")[0]
    assert "--bus-nats-url" in listed
    assert "--nats-url" not in listed


def test_tab_completes_commands_and_flags(tmp_path: Path) -> None:
    script = _command("completion", "bash")
    assert script.returncode == 0
    assert "complete " in script.stdout

    def complete(line: str) -> set[str]:
        answer = tmp_path / "completions"
        _command(
            env={
                **os.environ,
                "_ARGCOMPLETE": "1",
                "_ARGCOMPLETE_IFS": "\n",
                "_ARGCOMPLETE_STDOUT_FILENAME": str(answer),
                "COMP_LINE": line,
                "COMP_POINT": str(len(line)),
            }
        )
        return {word.strip() for word in answer.read_text().splitlines()}

    assert complete("trading-engine str") == {"strategy"}
    assert {"get", "set", "diff", "history", "reset"} <= complete("trading-engine strategy ")
    assert "--envoy-admin-port" in complete("trading-engine dev --envoy")
