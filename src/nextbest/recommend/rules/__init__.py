"""Business rules learned from the event log at training time, applied per request."""
