"""`python -m trading_engine` is the `trading-engine` command."""

from __future__ import annotations

from trading_engine.cli import main

raise SystemExit(main())
