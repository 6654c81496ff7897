"""Built-in preemption policies; importing this package registers them."""

from gigafactory.policy.preempt import lower_rank, no_preempt, reclaim

__all__ = ["lower_rank", "no_preempt", "reclaim"]
