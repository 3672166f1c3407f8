"""Fused causal attention kernels and the choice between them and the plain-JAX implementations.

Fused kernels compute plain causal attention (every row attends rows 0..itself, optionally within packed segments):
  - TPU: the Pallas splash-attention kernel (jax.experimental.pallas.ops.tpu.splash_attention), run per device
    under jax.shard_map with the batch and heads sharded as the logical axis rules say;
  - GPU: cuDNN flash attention through jax.nn.dot_product_attention(implementation='cudnn') (bfloat16/float16,
    no segments).
A single query per row (a decode step) takes the dense scores: [batch, heads, 1, T] is O(T) memory already, and one
fused softmax beats a loop over key blocks (about 1.6x per decode step on CPU, and half the compile time of a
token-by-token decode).
Everything else (routed queries, dropped keys, prefill chunks, CPU, float32 on GPU) goes to the blockwise attention,
with 128-wide tiles on CPU (there they beat both wider tiles and the dense scores from length 256 up, measured with
bench/attention.py) and 512-wide tiles on accelerators.

The platform is the one the computation is placed on: the devices of the context mesh (so an AOT compile for a TPU
topology on a CPU host picks splash), else JAX's default backend.
"""
from __future__ import annotations

import logging
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from skip_t5x.layers.attention_mask import AttentionMask
from skip_t5x.layers.blockwise_attention import ATTENTION_RESIDUALS, DEFAULT_BLOCK

IMPLEMENTATIONS = ("auto", "blockwise", "dense_scores")
SPLASH_BLOCK = 512
CPU_BLOCK = 128  # blockwise tile on CPU; accelerators use blockwise_attention.DEFAULT_BLOCK


def target_platform() -> str:
  """'tpu', 'gpu' or 'cpu': the platform of the context mesh's devices, else of JAX's default backend."""
  mesh = jax.sharding.get_abstract_mesh()
  device = None if mesh.empty else getattr(mesh, "abstract_device", None)
  platform = device.platform if device is not None else jax.default_backend()
  return "gpu" if platform in ("cuda", "rocm") else platform


def choose_implementation(requested: str, *, platform: str, mask: AttentionMask, num_keys: int, head_dim: int,
                          dtype) -> str:
  """'splash', 'cudnn', 'blockwise' or 'dense_scores' for one attention call (static shapes only)."""
  if requested not in IMPLEMENTATIONS:
    raise ValueError(f"attention implementation {requested!r} must be one of {IMPLEMENTATIONS}")
  if requested != "auto":
    return requested
  num_queries = mask.q_rows.shape[1]
  if num_queries == 1:  # a decode step: the scores [batch, heads, 1, T] are O(T) already and need no key loop
    return "dense_scores"
  if mask.is_plain_causal(num_keys):
    if platform == "tpu" and num_queries % 128 == 0 and head_dim % 128 == 0:
      return "splash"
    if (platform == "gpu" and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16) and not mask.has_segments
        and head_dim <= 128 and head_dim % 8 == 0):
      return "cudnn"
  return "blockwise"


def blockwise_block_size(platform: str) -> int:
  """Query and key tile of the blockwise attention on `platform`."""
  return CPU_BLOCK if platform == "cpu" else DEFAULT_BLOCK


def fused_causal_attention(kind: str, queries: jax.Array, keys: jax.Array, values: jax.Array,
                           mask: AttentionMask, interpret: bool = False) -> Optional[jax.Array]:
  """Plain causal attention with a fused kernel ('splash' or 'cudnn'); None when the kernel cannot be traced.

  queries: [batch, S, heads, head_dim], already scaled; keys, values: [batch, S, kv_heads, head_dim].
  Returns [batch, S, heads, head_dim].
  """
  try:
    if kind == "splash":
      return splash_attention(queries, keys, values, mask, interpret=interpret)
    if kind == "cudnn":
      context = jax.nn.dot_product_attention(queries, keys, values, scale=1.0, is_causal=True,
                                             implementation="cudnn")
      return checkpoint_residual(context)
  except (NotImplementedError, RuntimeError, ValueError) as e:  # e.g. no cuDNN, an unsupported shape
    logging.warning("fused attention %r unavailable (%s); using blockwise attention", kind, e)
    return None
  raise ValueError(f"unknown fused attention kernel {kind!r}")


def checkpoint_residual(context: jax.Array) -> jax.Array:
  """Names the attention output for the 'attention' remat policies (cuDNN's own residuals carry no name, so under
  those policies its forward kernel runs again in the backward pass; splash names its residuals itself)."""
  return jax.ad_checkpoint.checkpoint_name(context, ATTENTION_RESIDUALS)


def splash_attention(queries: jax.Array, keys: jax.Array, values: jax.Array, mask: AttentionMask,
                     interpret: bool = False) -> jax.Array:
  """Causal splash attention, per device under shard_map (batch and heads sharded by the logical axis rules)."""
  batch, length, heads, dim = queries.shape
  kv_heads = keys.shape[2]
  # [batch, kv, group, S, dim] queries and [batch, kv, S, dim] keys/values: the kernel's head-major layout
  q = queries.reshape(batch, length, kv_heads, heads // kv_heads, dim).transpose(0, 2, 3, 1, 4)
  k, v = keys.transpose(0, 2, 1, 3), values.transpose(0, 2, 1, 3)
  segments = (mask.q_segments, mask.key_segments) if mask.has_segments else None

  def per_device(q, k, v, segments):
    kernel = _splash_kernel(length, q.shape[2], interpret)
    segment_ids = None
    if segments is not None:
      segment_ids = _splash_modules()[0].SegmentIds(q=segments[0].astype(jnp.int32), kv=segments[1].astype(jnp.int32))
    per_kv_head = jax.vmap(kernel, in_axes=(0, 0, 0, None))  # grouped queries share one key/value head
    return jax.vmap(per_kv_head, in_axes=(0, 0, 0, 0))(q, k, v, segment_ids)

  mesh = jax.sharding.get_abstract_mesh()
  if not mesh.empty:
    batch_axes, heads_axes = nn.logical_to_mesh_axes(("batch", "heads"))
    spec = jax.sharding.PartitionSpec
    segment_spec = None if segments is None else (spec(batch_axes, None), spec(batch_axes, None))
    per_device = jax.shard_map(
        per_device, mesh=mesh, check_vma=False, out_specs=spec(batch_axes, heads_axes, None, None, None),
        in_specs=(spec(batch_axes, heads_axes, None, None, None), spec(batch_axes, heads_axes, None, None),
                  spec(batch_axes, heads_axes, None, None), segment_spec))
  context = per_device(q, k, v, segments)  # [batch, kv, group, S, dim]
  return context.transpose(0, 3, 1, 2, 4).reshape(batch, length, heads, dim)


def _splash_kernel(length: int, groups: int, interpret: bool):
  """The splash kernel for one key/value head and its `groups` query heads (an MQA kernel; causal mask)."""
  splash, masks = _splash_modules()
  block = min(SPLASH_BLOCK, length)
  sizes = splash.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block, block_q_dkv=block,
                            block_kv_dkv=block, block_kv_dkv_compute=block, block_q_dq=block, block_kv_dq=block)
  causal = masks.MultiHeadMask([masks.CausalMask((length, length)) for _ in range(groups)])
  return splash.make_splash_mqa(causal, block_sizes=sizes, head_shards=1, q_seq_shards=1,
                                residual_checkpoint_name=ATTENTION_RESIDUALS, interpret=interpret)


def _splash_modules():
  """The splash kernel and mask modules, imported on first use (Pallas TPU code is only needed for TPU)."""
  from jax.experimental.pallas.ops.tpu import splash_attention  # pylint: disable=g-import-not-at-top

  return splash_attention.splash_attention_kernel, splash_attention.splash_attention_mask
