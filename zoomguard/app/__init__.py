"""Process wiring: root settings, worker service, retrain job, ModelUpdate publishing, the settings reference."""
