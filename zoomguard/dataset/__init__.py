"""Dataset building: review decisions joined to verdicts, images fetched, teacher labels, conversations."""
