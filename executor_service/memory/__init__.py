"""The executor's link to the memory service: client, breaker, delivery, outbox, fallback index."""
