"""nextbest: a self-hosted, session-aware recommendation engine for online shops."""

__version__ = "0.1.0"
