"""Built-in cycle policies; importing this package registers them."""

from gigafactory.policy.cycle import on_events, rounds

__all__ = ["on_events", "rounds"]
