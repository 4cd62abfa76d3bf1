"""Kafka push: canonical events as Avro records on a topic, read from assigned partitions.

Each partition is one stream; its cursor is the next offset to read, stored with the events.
"""
