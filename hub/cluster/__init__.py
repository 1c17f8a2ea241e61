"""The hub as workers on a NATS cluster: streams, leases, and the ingest and fusion roles."""
