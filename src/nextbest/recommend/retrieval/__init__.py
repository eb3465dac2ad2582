"""Generators: each proposes up to k candidates for a request, best first."""
