"""Promotion: the gate, the flow that registers a better candidate and has it announced, the model registry."""
