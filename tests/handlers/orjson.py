"""A user module named like one of the runtime's dependencies: it must not break the runtime."""
