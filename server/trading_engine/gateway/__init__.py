"""The REST gateway: a real Envoy with the gRPC-JSON transcoder in front of the engine."""
