"""Small builders shared by the model tests: tiny configs, params, and router overrides ("mocked router logits")."""
from __future__ import annotations

import dataclasses
import functools

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from skip_t5x.model.decoder import DecoderConfig
from skip_t5x.layers.routing import RoutingConfig
from skip_t5x.model.decoder_only import DecoderOnlyModel

VOCAB = 97


def tiny_config(scan_layers: bool = False, num_layers: int = 2, **routing) -> DecoderConfig:
  routing.setdefault("skip_ratio", 0.5)
  return DecoderConfig(
      vocab_size=VOCAB, num_layers=num_layers, d_model=32, num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64,
      scan_layers=scan_layers, routing=RoutingConfig(**routing)).validate()


def with_routing(config: DecoderConfig, **changes) -> DecoderConfig:
  return dataclasses.replace(config, routing=dataclasses.replace(config.routing, **changes))


def init_params(model: DecoderOnlyModel, length: int = 16, seed: int = 0):
  variables = model.get_initial_variables(jax.random.PRNGKey(seed), {"decoder_input_tokens": (2, length)})
  return nn.unbox(variables["params"])


def set_routers(params, *, kernel_scale: float = 0.0, execute_bias: float = 0.0, seed: int = 7):
  """Overrides every router: logits = x @ kernel + [0, execute_bias] with kernel ~ N(0, kernel_scale)."""
  flat = flax.traverse_util.flatten_dict(params)
  rng = np.random.default_rng(seed)
  for path in list(flat):
    if "router" in path:
      value = flat[path]
      if path[-1] == "kernel":
        flat[path] = jnp.asarray(rng.normal(0.0, kernel_scale, value.shape), jnp.float32) if kernel_scale else (
            jnp.zeros_like(value))
      else:
        flat[path] = jnp.zeros_like(value).at[..., 1].set(execute_bias)
  return flax.traverse_util.unflatten_dict(flat)


def strip_routers(params):
  """The same params without router weights (the dense model's tree)."""
  flat = flax.traverse_util.flatten_dict(params)
  return flax.traverse_util.unflatten_dict({p: v for p, v in flat.items() if not any("skip_" in k for k in p)})


def random_tokens(batch: int, length: int, seed: int = 1) -> jax.Array:
  return jax.random.randint(jax.random.PRNGKey(seed), (batch, length), 2, VOCAB)


@functools.lru_cache(maxsize=None)
def _jitted_forward(model: DecoderOnlyModel):
  return jax.jit(lambda params, tokens, rng: model._forward(params, {"decoder_input_tokens": tokens}, rng)[0])


@functools.lru_cache(maxsize=None)
def _jitted_decisions(model: DecoderOnlyModel):
  return jax.jit(lambda params, tokens: model.routing_decisions(params, {"decoder_input_tokens": tokens}))


def logits_of(model: DecoderOnlyModel, params, tokens, rng=None) -> jax.Array:
  """Logits of a full forward pass (jitted once per model: eager Flax is slow to warm up)."""
  return _jitted_forward(model)(params, tokens, rng)


def decisions_of(model: DecoderOnlyModel, params, tokens) -> dict:
  return _jitted_decisions(model)(params, tokens)
