"""The retraining loop: review decisions -> dataset -> SFT/GRPO (TRL, LoRA) -> evaluation -> promotion."""
