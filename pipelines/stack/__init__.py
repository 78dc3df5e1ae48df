"""The local stack and process supervision: Kafka, the Pub/Sub emulator, the cloud emulators,
a Flink cluster, private stacks on free ports, and logged child processes."""
