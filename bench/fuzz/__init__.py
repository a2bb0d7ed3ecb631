"""Fuzzing the engine's inputs on the bus and over its API, against real servers."""
