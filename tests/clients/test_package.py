"""Other services install the client without the engine: it must not need it."""

from __future__ import annotations

import subprocess
import sys


def test_the_client_imports_nothing_of_the_engine() -> None:
    probe = (
        "import sys, trading_engine_client;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'trading_engine'))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    assert loaded.stdout.strip() == "[]"
