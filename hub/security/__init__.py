"""Broker security from the registry: identities, ACL, password hashes, credentials."""
