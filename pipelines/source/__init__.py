"""The source stage: the event generator, the Kafka -> Pub/Sub bridge and the archiver."""
