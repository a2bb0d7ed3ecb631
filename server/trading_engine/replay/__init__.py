"""Replay and backtest: recorded predictions through the same engine, compared and simulated."""
