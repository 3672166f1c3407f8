"""skip_t5x: learning-to-skip decoder-only language models (arXiv 2311.15436) in JAX/Flax, T5X style."""

__version__ = "0.1.0"
