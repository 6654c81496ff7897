"""The pure scheduling engine: ``Engine.handle(events) -> actions``."""

from gigafactory.engine.engine import Engine, JobRecord
from gigafactory.engine.log import Transition, TransitionLog

__all__ = ["Engine", "JobRecord", "Transition", "TransitionLog"]
