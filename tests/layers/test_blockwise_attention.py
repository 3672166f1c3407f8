"""Blockwise and fused attention against the dense-scores reference: forward and gradients, every mask kind."""
import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from skip_t5x.layers import fused_attention
from skip_t5x.layers.attention import dense_scores_attention
from skip_t5x.layers.attention_mask import AttentionMask, contiguous_mask
from skip_t5x.layers.blockwise_attention import ATTENTION_RESIDUALS, blockwise_attention

BATCH, LENGTH, HEADS, KV_HEADS, DIM = 2, 37, 4, 2, 8  # 37: tiles never divide it, so padding is exercised


def _qkv(num_queries=LENGTH, num_keys=LENGTH, dim=DIM, heads=HEADS, kv_heads=KV_HEADS):
  q = jax.random.normal(jax.random.PRNGKey(0), (BATCH, num_queries, heads, dim)) * dim ** -0.5
  k = jax.random.normal(jax.random.PRNGKey(1), (BATCH, num_keys, kv_heads, dim))
  v = jax.random.normal(jax.random.PRNGKey(2), (BATCH, num_keys, kv_heads, dim))
  return q, k, v


def _segments():
  return jnp.array([[1] * 20 + [2] * 17, [1] * 10 + [2] * 20 + [0] * 7], jnp.int32)  # [batch, LENGTH]


def _rows(length=LENGTH):
  return jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (BATCH, length))


def _assert_same_values_and_grads(mask, q, k, v, block_q, block_k):
  blockwise = functools.partial(blockwise_attention, mask=mask, block_q=block_q, block_k=block_k)
  dense = functools.partial(dense_scores_attention, mask=mask)
  np.testing.assert_allclose(jax.jit(blockwise)(q, k, v), dense(q, k, v), atol=1e-5)
  loss = lambda fn: lambda *qkv: jnp.sum(jnp.sin(fn(*qkv)))  # a non-linear loss: gradients differ per element
  got = jax.jit(jax.grad(loss(blockwise), argnums=(0, 1, 2)))(q, k, v)
  want = jax.grad(loss(dense), argnums=(0, 1, 2))(q, k, v)
  for name, g, w in zip("qkv", got, want):
    assert float(jnp.max(jnp.abs(w))) > 1e-3, name  # the gradient is not trivially zero
    np.testing.assert_allclose(g, w, atol=1e-5, err_msg=f"d{name}")


@pytest.mark.parametrize("kind", ["causal", "packed", "dropped_keys"])
@pytest.mark.parametrize("block_q,block_k", [(8, 16), (64, 64)])
def test_blockwise_equals_dense_scores(kind, block_q, block_k):
  q, k, v = _qkv()
  if kind == "causal":
    mask = contiguous_mask(BATCH, LENGTH)  # contiguous: future key blocks are skipped
  elif kind == "packed":
    mask = contiguous_mask(BATCH, LENGTH, q_segments=_segments(), key_segments=_segments())
  else:
    key_mask = jax.random.bernoulli(jax.random.PRNGKey(3), 0.6, (BATCH, LENGTH)).at[:, 0].set(True)
    mask = AttentionMask(_rows(), key_mask=key_mask)
  _assert_same_values_and_grads(mask, q, k, v, block_q, block_k)


def test_routed_queries_attend_by_their_original_rows():
  """A gathered subset of queries (gather dispatch), packed keys; padding slots point at row 0 like dispatch's."""
  rows = jnp.array([[0, 3, 4, 10, 20, 36, 0, 0], [2, 5, 6, 7, 30, 31, 32, 0]], jnp.int32)  # [batch, capacity]
  q, k, v = _qkv()
  q_sub = jax.vmap(lambda x, r: x[r])(q, rows)
  q_segments = jnp.take_along_axis(_segments(), rows, axis=-1)
  mask = AttentionMask(rows, q_segments, _segments())
  _assert_same_values_and_grads(mask, q_sub, k, v, block_q=4, block_k=8)


def test_decode_chunk_at_a_traced_cache_offset():
  """A chunk of 5 queries at cache row `offset` into 37 keys (a KV cache), the offset known only at run time."""
  q, k, v = _qkv()
  offset = 11
  mask_of = lambda start: contiguous_mask(BATCH, 5, q_start=start)
  chunk = jax.jit(lambda q, k, v, start: blockwise_attention(q, k, v, mask_of(start), block_q=2, block_k=8))
  got = chunk(q[:, offset:offset + 5], k, v, jnp.int32(offset))
  full = dense_scores_attention(q, k, v, contiguous_mask(BATCH, LENGTH))[:, offset:offset + 5]
  np.testing.assert_allclose(got, full, atol=1e-5)


def test_a_query_with_no_allowed_key_gets_zeros_in_both():
  q, k, v = _qkv(num_queries=3)
  mask = AttentionMask(jnp.ones((BATCH, 3), jnp.int32), key_mask=jnp.zeros((BATCH, LENGTH), bool).at[:, 0].set(True))
  mask = AttentionMask(mask.q_rows.at[:, 1].set(-1), key_mask=mask.key_mask)  # query 1 precedes every key
  got = blockwise_attention(q, k, v, mask, block_q=2, block_k=8)
  np.testing.assert_allclose(got, dense_scores_attention(q, k, v, mask), atol=1e-6)
  assert float(jnp.max(jnp.abs(got[:, 1]))) == 0.0


def test_forward_saves_only_output_and_logsumexp_under_the_name_policy(capsys):
  """With save_only_these_names(ATTENTION_RESIDUALS) nothing of size S x T is kept, and the forward is not rerun."""
  length = 64
  q, k, v = _qkv(num_queries=length, num_keys=length)
  mask = contiguous_mask(BATCH, length)
  policy = jax.checkpoint_policies.save_only_these_names(ATTENTION_RESIDUALS)
  fn = jax.checkpoint(lambda q, k, v: jnp.sum(blockwise_attention(q, k, v, mask, block_q=16, block_k=16) ** 2),
                      policy=policy)
  jax.ad_checkpoint.print_saved_residuals(fn, q, k, v)
  saved = capsys.readouterr().out.strip().splitlines()  # one line per residual: "f32[2,64,2,2,8] named '...'"
  named = [line for line in saved if f"named '{ATTENTION_RESIDUALS}'" in line]
  assert len(named) == 2, saved  # the output and the log-sum-exp
  sizes = [np.prod([int(n) for n in re.search(r"\[([\d,]*)\]", line).group(1).split(",") if n]) for line in saved]
  assert max(sizes) <= BATCH * length * HEADS * DIM, saved  # nothing like [batch, heads, S, T]


@pytest.mark.parametrize("platform,dtype,routed,expected", [
    ("tpu", jnp.bfloat16, False, "splash"),
    ("tpu", jnp.bfloat16, True, "blockwise"),
    ("gpu", jnp.bfloat16, False, "cudnn"),
    ("gpu", jnp.float32, False, "blockwise"),  # cuDNN flash attention needs 16-bit inputs
    ("cpu", jnp.float32, False, "blockwise"),
])
def test_auto_picks_a_fused_kernel_only_for_plain_causal_calls(platform, dtype, routed, expected):
  mask = contiguous_mask(BATCH, 256)
  if routed:
    mask = AttentionMask(mask.q_rows[:, :128], q_start=None)
  got = fused_attention.choose_implementation("auto", platform=platform, mask=mask, num_keys=256, head_dim=128,
                                              dtype=dtype)
  assert got == expected
  assert fused_attention.choose_implementation("dense_scores", platform=platform, mask=mask, num_keys=256,
                                               head_dim=128, dtype=dtype) == "dense_scores"


@pytest.mark.parametrize("platform", ["tpu", "gpu", "cpu"])
def test_auto_takes_dense_scores_for_one_query_per_row(platform):
  one_query = contiguous_mask(BATCH, 1, q_start=300)  # a decode step at cache row 300
  assert fused_attention.choose_implementation("auto", platform=platform, mask=one_query, num_keys=512,
                                               head_dim=128, dtype=jnp.bfloat16) == "dense_scores"
  two_queries = contiguous_mask(BATCH, 2, q_start=300)
  assert fused_attention.choose_implementation("auto", platform=platform, mask=two_queries, num_keys=512,
                                               head_dim=128, dtype=jnp.bfloat16) == "blockwise"


def test_unknown_implementation_is_named_in_the_error():
  with pytest.raises(ValueError, match="'flash'"):
    fused_attention.choose_implementation("flash", platform="cpu", mask=contiguous_mask(1, 4), num_keys=4,
                                          head_dim=8, dtype=jnp.float32)


def test_splash_kernel_in_interpret_mode_under_a_mesh_equals_blockwise():
  """The TPU kernel, run by the Pallas interpreter on CPU through the same shard_map the TPU path uses."""
  length, dim = 256, 128
  q, k, v = _qkv(num_queries=length, num_keys=length, dim=dim)
  segments = jnp.array([[1] * 100 + [2] * 156, [1] * 256], jnp.int32)
  mask = contiguous_mask(BATCH, length, q_segments=segments, key_segments=segments)
  mesh = jax.make_mesh((2, 1), ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2,
                       devices=jax.devices()[:2])
  rules = (("batch", "data"), ("heads", "model"))
  splash = lambda q, k, v: fused_attention.splash_attention(q, k, v, mask, interpret=True)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    sharding = jax.sharding.NamedSharding(mesh, PartitionSpec("data"))
    q, k, v = (jax.device_put(x, sharding) for x in (q, k, v))
    got = jax.jit(splash)(q, k, v)
    grads = jax.jit(jax.grad(lambda *a: jnp.sum(jnp.sin(splash(*a))), argnums=(0, 1, 2)))(q, k, v)
  want = blockwise_attention(q, k, v, mask, block_q=64, block_k=64)
  np.testing.assert_allclose(got, want, atol=1e-5)
  want_grads = jax.grad(lambda *a: jnp.sum(jnp.sin(blockwise_attention(*a, mask))), argnums=(0, 1, 2))(q, k, v)
  for name, g, w in zip("qkv", grads, want_grads):
    np.testing.assert_allclose(g, w, atol=5e-5, err_msg=f"d{name}")
