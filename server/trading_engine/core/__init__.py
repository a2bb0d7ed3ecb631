"""The decision core: pure, synchronous, deterministic trading rules.

No I/O and no clock reads: time is an argument and mutable state (market
views, signal memory) is passed in explicitly. Everything here is exercised
by table-driven and property-based tests in tests/core/.
"""
