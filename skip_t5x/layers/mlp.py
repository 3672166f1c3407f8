"""Gated feed-forward block (SwiGLU by default)."""
import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"silu": nn.silu, "gelu": nn.gelu, "relu": nn.relu}


class GatedMlp(nn.Module):
  """y = W_out (act(W_gate x) * (W_up x)). Token-wise, so it runs unchanged on a gathered subset of tokens.

  token_chunk > 0 runs the tokens of each sequence in chunks of that many (when it divides their number), one after
  another, each under jax.checkpoint: the [tokens, mlp_dim] hidden activations and their gradients then exist for one
  chunk at a time, which at long sequences is most of a layer's backward-pass memory. The result is the same.
  """

  mlp_dim: int
  activation: str = "silu"
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  token_chunk: int = 0  # 0: all tokens at once

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    embed = x.shape[-1]  # x: [batch, tokens, embed]

    def kernel(name, shape, axes, fan_in):
      init = nn.with_logical_partitioning(nn.initializers.normal(stddev=fan_in**-0.5), axes)
      return self.param(name, init, shape, self.param_dtype).astype(self.dtype)

    w_gate = kernel("wi_gate", (embed, self.mlp_dim), ("embed", "mlp"), embed)
    w_up = kernel("wi_up", (embed, self.mlp_dim), ("embed", "mlp"), embed)
    w_out = kernel("wo", (self.mlp_dim, embed), ("mlp", "embed"), self.mlp_dim)
    activation = ACTIVATIONS[self.activation]

    def ffn(x):  # [batch, tokens, embed] -> [batch, tokens, embed]
      hidden = activation(jnp.einsum("bte,em->btm", x, w_gate))  # [batch, tokens, mlp]
      hidden = hidden * jnp.einsum("bte,em->btm", x, w_up)
      hidden = nn.with_logical_constraint(hidden, ("batch", "length", "mlp"))
      return jnp.einsum("btm,me->bte", hidden, w_out)

    x = x.astype(self.dtype)
    batch, tokens = x.shape[:2]
    if self.token_chunk <= 0 or tokens <= self.token_chunk or tokens % self.token_chunk:
      return ffn(x)
    chunks = x.reshape(batch, tokens // self.token_chunk, self.token_chunk, embed).swapaxes(0, 1)  # [n, b, c, e]
    y = jax.lax.map(jax.checkpoint(ffn), chunks)  # [n, batch, chunk, embed]
    return y.swapaxes(0, 1).reshape(batch, tokens, embed)
