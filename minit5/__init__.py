"""minit5: T5 (the encoder-decoder behind flan-T5) in plain PyTorch."""

from .config import ConfigError, T5Config
from .model import T5
from .tokenizer import Tokenizer, TokenizerError

__all__ = ["T5", "T5Config", "ConfigError", "Tokenizer", "TokenizerError"]
__version__ = "0.1.0"
