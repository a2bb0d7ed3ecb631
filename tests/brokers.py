"""The brokers the bus tests start: the developer stack's (trading_engine.devstack.brokers)."""

from trading_engine.devstack.brokers import BrokerStartError, KafkaBroker, NatsServer

__all__ = ["BrokerStartError", "KafkaBroker", "NatsServer"]
