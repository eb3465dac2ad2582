"""Behaviour events and catalog items: the schema, and importers for public formats."""
