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
    # The table's embed axis is FSDP-sharded, so each device looks up its few embed columns for every token of the
    # global batch. Gathering along the table's minor axis gives [embed / fsdp, batch, length] with tokens minor;
    # [batch, length, embed / fsdp] would have TPUs pad the small embed axis 16-fold (1.5 GiB per chip at 256 x 8192
    # tokens, forward and backward).
    columns = jnp.take(embedding.astype(self.dtype).T, tokens, axis=1)  # [embed, batch, length]
    return jnp.moveaxis(columns, 0, -1)  # [batch, length, embed]


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
