"""The bus: predictions in and signals out over NATS and Kafka at the same time.

names.py      pinned subjects and topics
envelope.py   opening inbound envelopes, sealing outbound ones
deliveries.py exactly one decision per message id; producer sequence gaps
claims.py     the same across engine instances (NATS key-value)
outbox.py     Kafka output in order, spilled to a durable file while Kafka is away
nats_link.py  kafka_link.py   the two transports, thin
bridge.py     the pipeline both transports feed
"""
