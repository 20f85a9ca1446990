"""minit5: T5 (the encoder-decoder behind flan-T5) in plain PyTorch."""

from .config import ConfigError, T5Config
from .model import T5

__all__ = ["T5", "T5Config", "ConfigError"]
__version__ = "0.1.0"
