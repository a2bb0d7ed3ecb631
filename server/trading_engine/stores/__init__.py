"""Persistence: strategy revisions, signal history, manual signals and audit records.

`base` defines the records and the Store interface; `sqlite` (the embedded
default) and `postgres` implement it; `history` batches signal writes off the
decision path; `urls.open_store` picks the backend from a URL. This file
imports none of them, so the compiled hot path can use `base` without
pulling in the database drivers.
"""
