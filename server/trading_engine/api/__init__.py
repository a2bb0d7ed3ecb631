"""gRPC transport: servicers, interceptors and the server they run in. No trading rules here."""
