"""The Kafka moderation worker: poll, in-flight window, offsets, routing, publishing, fetching."""
