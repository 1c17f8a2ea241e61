"""The hub as workers on a NATS cluster: the cluster itself, streams, leases, and the roles."""
