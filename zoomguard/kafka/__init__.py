"""Kafka plumbing shared by every process: settings, producer, consumer thread, reading, following, admin."""
