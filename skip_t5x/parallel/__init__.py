"""Parallelism: the device mesh, logical axis rules, shardings, sharded initialisation and jax.distributed.

Owns how arrays are laid out over devices and hosts; knows nothing about models, training or data (it receives
init functions and host batches). May import: jax, flax, gin and its own modules only. Used by training/,
evaluation/, study/ and the commands.
"""
from skip_t5x.parallel.distributed import DistributedConfig, initialize_distributed
from skip_t5x.parallel.mesh import (MESH_AXES, LogicalRules, MeshConfig, check_batch_divisible, create_mesh,
                                    data_parallel_size, logical_axis_rules, mesh_context, resolve_mesh_shape)
from skip_t5x.parallel.placement import Placement, place_model
from skip_t5x.parallel.sharding import (abstract_sharded, batch_sharding, make_global_batch, param_count,
                                        sharded_init, strip_boxes, tree_shardings)
