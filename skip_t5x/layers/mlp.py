"""Gated feed-forward block (SwiGLU by default)."""
import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"silu": nn.silu, "gelu": nn.gelu, "relu": nn.relu}


class GatedMlp(nn.Module):
  """y = W_out (act(W_gate x) * (W_up x)). Token-wise, so it runs unchanged on a gathered subset of tokens."""

  mlp_dim: int
  activation: str = "silu"
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    embed = x.shape[-1]  # x: [batch, tokens, embed]

    def kernel(name, shape, axes, fan_in):
      init = nn.with_logical_partitioning(nn.initializers.normal(stddev=fan_in**-0.5), axes)
      return self.param(name, init, shape, self.param_dtype).astype(self.dtype)

    w_gate = kernel("wi_gate", (embed, self.mlp_dim), ("embed", "mlp"), embed)
    w_up = kernel("wi_up", (embed, self.mlp_dim), ("embed", "mlp"), embed)
    w_out = kernel("wo", (self.mlp_dim, embed), ("mlp", "embed"), self.mlp_dim)
    x = x.astype(self.dtype)
    hidden = ACTIVATIONS[self.activation](jnp.einsum("bte,em->btm", x, w_gate))  # [batch, tokens, mlp]
    hidden = hidden * jnp.einsum("bte,em->btm", x, w_up)
    hidden = nn.with_logical_constraint(hidden, ("batch", "length", "mlp"))
    return jnp.einsum("btm,me->bte", hidden, w_out)  # [batch, tokens, embed]
