"""Checkpoint metadata against the requested train state: another model or optimizer is named, never 'corrupt'."""
from __future__ import annotations

import types

import jax
import numpy as np
import pytest

from skip_t5x.training import checkpoint_compat


def _state(params, opt_state=()):
  return types.SimpleNamespace(params=params, opt_state=opt_state)


def test_flat_shapes_treat_namedtuple_fields_and_dict_keys_alike():
  import optax

  requested = (optax.scale_by_adam().init({"w": np.zeros((3, 2))}),)  # a namedtuple (count, mu, nu) in a tuple
  saved = [{"count": jax.ShapeDtypeStruct((), np.int32), "mu": {"w": jax.ShapeDtypeStruct((3, 2), np.float32)},
            "nu": {"w": jax.ShapeDtypeStruct((3, 2), np.float32)}}]  # what orbax's metadata tree looks like
  assert checkpoint_compat.flat_shapes(requested) == checkpoint_compat.flat_shapes(saved) == {
      "0/count": (), "0/mu/w": (3, 2), "0/nu/w": (3, 2)}


def test_differences_name_shapes_and_absent_entries():
  saved = {"embed": (2048, 64), "layer_00/skip_layer/router/kernel": (64, 2)}
  requested = {"embed": (2048, 128), "layer_00/skip_ffn/router/kernel": (128, 2)}
  assert checkpoint_compat.differences(saved, requested) == [
      "embed: saved (2048, 64), requested (2048, 128)",
      "layer_00/skip_ffn/router/kernel: saved absent, requested (128, 2)",
      "layer_00/skip_layer/router/kernel: saved (64, 2), requested absent"]


def test_check_compatible_refuses_another_model_then_another_optimizer():
  params = {"w": np.zeros((4, 2)), "b": np.zeros((2,))}
  checkpoint_compat.check_compatible(3, "/ckpt", params, [{"m": params}], _state(params, [{"m": params}]))
  wider = dict(params, w=np.zeros((4, 3)))
  with pytest.raises(checkpoint_compat.TrainStateMismatchError,
                     match=r"step 3 in /ckpt holds another model .*1 param\(s\) differ \(w: saved \(4, 2\), "
                           r"requested \(4, 3\)\)"):
    checkpoint_compat.check_compatible(3, "/ckpt", params, None, _state(wider))
  with pytest.raises(checkpoint_compat.TrainStateMismatchError, match=r"another optimizer state .*0/v/w: saved "
                                                                      r"absent, requested \(4, 2\)"):
    checkpoint_compat.check_compatible(3, "/ckpt", params, [{"m": params}], _state(params, [{"m": params,
                                                                                               "v": params}]))
