"""The developer stack: private brokers, the reference risk service and a demo feed."""
