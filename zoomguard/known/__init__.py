"""Known content: PDQ perceptual hashes of images a reviewer (or conclusive evidence, or an imported hash list)
already decided, held in a bank that every worker reads from a compacted Kafka topic, so a re-encoded, resized
copy gets the same label without a model call. This room is the pure core: hashing, the bank's records, the
in-memory index, the CSV of hash lists. No Kafka and no worker here."""
