"""RMSNorm with a logically partitioned scale."""
import flax.linen as nn
import jax
import jax.numpy as jnp


class RMSNorm(nn.Module):
  """y = x / rms(x) * scale, computed in float32, returned in `dtype`."""

  epsilon: float = 1e-6
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    scale = self.param(
        "scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)), (x.shape[-1],), self.param_dtype
    )
    x32 = x.astype(jnp.float32)  # [..., embed]
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.epsilon)
    return (y * scale.astype(jnp.float32)).astype(self.dtype)
