"""The commands of `trading-engine` beyond running the engine: daily jobs and their parts."""
