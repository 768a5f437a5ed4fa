"""Helpers that the tests and bench/ share: small models built from configs and saved to disk, never downloaded."""
