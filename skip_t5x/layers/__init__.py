"""Pure Flax modules. Nothing here imports from the rest of skip_t5x."""
