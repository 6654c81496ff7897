"""Built-in backfill policies; importing this package registers them."""

from gigafactory.policy.backfill import easy, greedy, none

__all__ = ["easy", "greedy", "none"]
