"""Publish: release policy and the partner-facing outputs."""
