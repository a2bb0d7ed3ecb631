"""Risk management of decided signals: assessment client, circuit breaker, fallbacks."""
