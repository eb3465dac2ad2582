"""Trigger channels: messages with recommendations when a shopper's moment calls for one (a
cart left without a purchase, a purchase whose complements are worth a word), to a signed
webhook or a Redis stream, at most once per trigger and user per window."""
