"""Ingest: decode, validate and convert inbound messages into measurements."""
