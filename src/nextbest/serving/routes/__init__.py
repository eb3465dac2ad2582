"""One router per resource: events, recommendations, items, models, health."""
