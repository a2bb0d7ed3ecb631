"""Hand-written protobuf codecs for the two hot-path messages.

Reading a prediction field by field through the protobuf runtime costs about
0.5 µs per vote or pattern, and building a TradingSignal with a 20-line trace
through it about 30 µs: more than the whole decision budget (DESIGN.md §4).
These codecs read MLPredictionBatch bytes straight into the core's input
values and write TradingSignalBatch bytes straight from its decisions. Tests
check them field for field against the protobuf runtime (decision 7).
"""
