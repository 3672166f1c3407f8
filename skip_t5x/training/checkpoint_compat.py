"""Does a checkpoint hold the train state a run asks for? Checked on orbax's saved metadata, before restoring.

A resume with another model (another size, routers on other modules) or another optimizer is a request that
differs from what was saved, not a damaged checkpoint: it is refused with a ``TrainStateMismatchError`` naming the
entries that differ and their saved and requested shapes, and no checkpoint is touched.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import jax

MAX_LISTED = 4  # differences named in the message; the rest are counted


class TrainStateMismatchError(ValueError):
  """The checkpoint's params (or optimizer state) differ in structure or shape from the requested ones."""


def _key_name(key: Any) -> str:
  for attribute in ("key", "name", "idx"):
    if hasattr(key, attribute):
      return str(getattr(key, attribute))
  return str(key)


def flat_shapes(tree: Any) -> Dict[str, Tuple[int, ...]]:
  """{'layer_00/sub_0/mlp/wo': (256, 64), ...} for a tree of arrays, abstract arrays or orbax array metadata.

  Namedtuple fields (optax states) and dict keys both become path parts, so a saved tree and a requested one
  compare equal exactly when they hold the same entries with the same shapes.
  """
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    shape = getattr(leaf, "shape", None)
    out["/".join(_key_name(k) for k in path)] = tuple(shape) if shape is not None else ()
  return out


def differences(saved: Dict[str, Tuple[int, ...]], requested: Dict[str, Tuple[int, ...]]) -> List[str]:
  """'NAME: saved (64, 2), requested absent' for every entry whose shape differs or that one side lacks."""
  out = []
  for name in sorted(set(saved) | set(requested)):
    before = saved.get(name)
    after = requested.get(name)
    if before != after:
      out.append(f"{name}: saved {before if before is not None else 'absent'}, "
                 f"requested {after if after is not None else 'absent'}")
  return out


def _listing(diffs: List[str]) -> str:
  more = f"; and {len(diffs) - MAX_LISTED} more" if len(diffs) > MAX_LISTED else ""
  return "; ".join(diffs[:MAX_LISTED]) + more


def check_compatible(step: int, directory: str, saved_params: Any, saved_opt_state: Optional[Any],
                     abstract_state: Any) -> None:
  """Raises TrainStateMismatchError when checkpoint `step` cannot hold `abstract_state` (params first)."""
  param_diffs = differences(flat_shapes(saved_params), flat_shapes(abstract_state.params))
  if param_diffs:
    raise TrainStateMismatchError(
        f"checkpoint step {step} in {directory} holds another model than the one requested: "
        f"{len(param_diffs)} param(s) differ ({_listing(param_diffs)}). Resume with the model the run was "
        "trained with (its config.gin), or train this model in a new --model_dir")
  if saved_opt_state is None:
    return
  opt_diffs = differences(flat_shapes(saved_opt_state), flat_shapes(abstract_state.opt_state))
  if opt_diffs:
    raise TrainStateMismatchError(
        f"checkpoint step {step} in {directory} holds another optimizer state than the one requested: "
        f"{len(opt_diffs)} entr(ies) differ ({_listing(opt_diffs)}). Resume with the optimizer the run was "
        "trained with (OPTIMIZER and OptimizerConfig in its config.gin), or start a new --model_dir from these "
        "params with CheckpointConfig.initial_checkpoint_path")
