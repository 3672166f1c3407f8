"""Mesh shapes, logical axis rules, shardings, global batches and distributed start-up settings."""
from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from skip_t5x import parallel


@pytest.mark.parametrize("shape, devices, expected", [
    ((-1, 1, 1), 8, (8, 1, 1)),
    ((4, 1, 2), 8, (4, 1, 2)),
    ((1, -1, 2), 8, (1, 4, 2)),
    ((2, 2, -1), 8, (2, 2, 2)),
])
def test_resolve_mesh_shape_fills_minus_one(shape, devices, expected):
  assert parallel.resolve_mesh_shape(shape, devices) == expected


@pytest.mark.parametrize("shape, message", [
    ((3, 1, 1), r"mesh shape \{'data': 3, 'fsdp': 1, 'model': 1\} has 3 devices but 8"),
    ((3, -1, 1), r"do not divide the device count 8"),
    ((-1, -1, 1), "at most one axis may be -1"),
    ((0, 1, -1), "must be positive"),
])
def test_bad_mesh_shapes_are_named(shape, message):
  with pytest.raises(ValueError, match=message):
    parallel.resolve_mesh_shape(shape, 8)


def test_create_mesh_axes_and_devices():
  mesh = parallel.create_mesh(parallel.MeshConfig(data=4, fsdp=1, model=2))
  assert dict(mesh.shape) == {"data": 4, "fsdp": 1, "model": 2}
  assert mesh.size == jax.device_count() == 8
  with pytest.raises(ValueError, match="has 6 devices but 8"):
    parallel.create_mesh(parallel.MeshConfig(data=3, fsdp=1, model=2))


def test_rules_put_batch_on_data_axes_and_params_on_fsdp_and_model():
  rules = parallel.logical_axis_rules()
  assert nn.logical_to_mesh_axes(("batch", "length", "embed"), rules) == P(("data", "fsdp"), None, None)
  assert nn.logical_to_mesh_axes(("embed", "mlp"), rules) == P("fsdp", "model")
  assert nn.logical_to_mesh_axes(("vocab", "embed"), rules) == P("model", "fsdp")
  assert nn.logical_to_mesh_axes(("layers", "embed", "heads", "kv"), rules) == P(None, "fsdp", "model", None)
  assert nn.logical_to_mesh_axes(("embed", "unmodeled"), rules) == P("fsdp", None)


def test_tree_shardings_drop_axes_that_do_not_divide():
  mesh = parallel.create_mesh(parallel.MeshConfig(data=1, fsdp=4, model=2))
  rules = parallel.logical_axis_rules()
  tree = {
      "kernel": nn.Partitioned(jax.ShapeDtypeStruct((8, 6), np.float32), ("embed", "mlp")),
      "factored_row": nn.Partitioned(jax.ShapeDtypeStruct((1,), np.float32), ("embed", "mlp")),  # rank 1 != 2
      "odd": nn.Partitioned(jax.ShapeDtypeStruct((6, 3), np.float32), ("embed", "mlp")),  # 6 % 4, 3 % 2 != 0
      "count": jax.ShapeDtypeStruct((), np.int32),
  }
  shardings = parallel.tree_shardings(tree, mesh, rules)
  assert shardings["kernel"].spec == P("fsdp", "model")
  assert shardings["factored_row"].spec == P(None)
  assert shardings["odd"].spec == P(None, None)
  assert shardings["count"].spec == P()


def test_check_batch_divisible_names_the_batch():
  mesh = parallel.create_mesh(parallel.MeshConfig(data=4, fsdp=1, model=2))
  parallel.check_batch_divisible(8, mesh)
  parallel.check_batch_divisible(16, mesh, microbatches=4)
  with pytest.raises(ValueError, match=r"BATCH_SIZE=6 .* not divisible by the data-parallel mesh size 4"):
    parallel.check_batch_divisible(6, mesh)
  with pytest.raises(ValueError, match=r"microbatch 2\) is not divisible"):
    parallel.check_batch_divisible(8, mesh, microbatches=4)
  with pytest.raises(ValueError, match="not divisible into microbatches=3"):
    parallel.check_batch_divisible(8, mesh, microbatches=3)


def test_make_global_batch_shards_rows_over_data_axes():
  mesh = parallel.create_mesh(parallel.MeshConfig(data=2, fsdp=2, model=2))
  rules = parallel.logical_axis_rules()
  local = {"decoder_input_tokens": np.arange(8 * 5, dtype=np.int32).reshape(8, 5)}
  batch = parallel.make_global_batch(local, mesh, rules)
  array = batch["decoder_input_tokens"]
  assert array.shape == (8, 5)
  np.testing.assert_array_equal(np.asarray(array), local["decoder_input_tokens"])
  assert array.sharding.spec == P(("data", "fsdp"), None)
  # 4 row shards of 2 rows each, replicated over 'model'.
  assert {shard.data.shape for shard in array.addressable_shards} == {(2, 5)}


def test_initialize_distributed_settings():
  config = parallel.DistributedConfig()
  assert parallel.initialize_distributed(config, env={}) is False  # single process: no-op
  assert parallel.initialize_distributed(config, env={"SKIP_T5X_NUM_PROCESSES": "1"}) is False
  with pytest.raises(ValueError, match=r"process_id=5 is outside \[0, num_processes=2\)"):
    parallel.initialize_distributed(
        config, env={"SKIP_T5X_NUM_PROCESSES": "2", "SKIP_T5X_PROCESS_ID": "5",
                     "SKIP_T5X_COORDINATOR": "127.0.0.1:1"})
