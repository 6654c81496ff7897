"""Built-in admission policies; importing this package registers them."""

from gigafactory.policy.admit import admit_all, ai_act, award, quota

__all__ = ["admit_all", "ai_act", "award", "quota"]
