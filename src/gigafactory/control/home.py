"""Where a control plane lives unless told otherwise. Light on purpose: the CLI's client needs it, and must not
pay for the store to find a token."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_data_dir"]


def default_data_dir() -> Path:
    """``$GIGAFACTORY_HOME``, else ``~/.gigafactory``."""
    env = os.environ.get("GIGAFACTORY_HOME")
    return Path(env) if env else Path.home() / ".gigafactory"
