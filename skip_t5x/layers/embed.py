"""Token embedding and the untied output projection."""
import flax.linen as nn
import jax
import jax.numpy as jnp


class Embed(nn.Module):
  """Token ids [batch, length] -> [batch, length, embed]."""

  vocab_size: int
  features: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, tokens: jax.Array) -> jax.Array:
    embedding = self.param(
        "embedding",
        nn.with_logical_partitioning(nn.initializers.normal(stddev=1.0), ("vocab", "embed")),
        (self.vocab_size, self.features),
        self.param_dtype,
    )
    return jnp.take(embedding, tokens, axis=0).astype(self.dtype)  # [batch, length, embed]


class OutputHead(nn.Module):
  """[batch, length, embed] -> float32 logits [batch, length, vocab] (not tied to the embedding)."""

  vocab_size: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    embed = x.shape[-1]
    kernel = self.param(
        "kernel",
        nn.with_logical_partitioning(nn.initializers.normal(stddev=embed**-0.5), ("embed", "vocab")),
        (embed, self.vocab_size),
        self.param_dtype,
    )
    logits = jnp.einsum("bte,ev->btv", x, kernel.astype(self.dtype))  # [batch, length, vocab]
    return logits.astype(jnp.float32)
