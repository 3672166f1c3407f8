"""Routing cost benchmark: XLA FLOPs and wall time of forward+backward, dense vs routed, masked vs gather.

    python bench/routing.py --out bench/routing.json [--repeats 7]

Measures side by side in one run, for dense and for SKIP_RATIO in {0.25, 0.5, 0.75} x {masked, gather}:
  * `ffn_module`: one routed FFN module (RMSNorm + router + gated FFN, residual) on [batch, length, embed];
  * `ffn_model`:  a small decoder with every FFN routed (8x d_model FFN as in the paper): a full training step
                  (loss, gradients, Adafactor update);
  * `layer_model`: the same decoder with whole layers routed.
Prints a table and writes a JSON list of rows: variant, skip_ratio, dispatch, flops, seconds (median), ratios.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from skip_t5x.model.decoder import DecoderConfig  # noqa: E402
from skip_t5x.layers.mlp import GatedMlp  # noqa: E402
from skip_t5x.layers.norms import RMSNorm  # noqa: E402
from skip_t5x.layers.routing import RoutingConfig  # noqa: E402
from skip_t5x.layers.skip import SkipLayer  # noqa: E402
from skip_t5x.model.decoder_only import DecoderOnlyModel  # noqa: E402

SKIP_RATIOS = (0.25, 0.5, 0.75)
DISPATCHES = ("masked", "gather")


class FfnModule(nn.Module):
  """x + FFN(norm(x)), optionally routed."""

  mlp_dim: int
  routing: RoutingConfig

  @nn.compact
  def __call__(self, x):  # [batch, length, embed]
    norm, mlp = RMSNorm(name="norm"), GatedMlp(self.mlp_dim, name="mlp")
    if not self.routing.enabled:
      return x + mlp(norm(x))
    fn = lambda x_sub, rows, keep: mlp(norm(x_sub))
    y, _ = SkipLayer(self.routing)(x, norm(x), fn, jnp.ones(x.shape[:2], bool), deterministic=False)
    return y


def _time(fn, args, repeats):
  jax.block_until_ready(fn(*args))  # warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _flops(compiled):
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"])


def bench_module(routing, args):
  module = FfnModule(args.d_model * 8, routing)
  x = jax.random.normal(jax.random.PRNGKey(0), (args.batch, args.length, args.d_model))
  rngs = {"params": jax.random.PRNGKey(1), "gumbel": jax.random.PRNGKey(2)}
  params = module.init(rngs, x)["params"]

  def loss(p, x, rng):
    return jnp.sum(module.apply({"params": p}, x, rngs={"gumbel": rng}) ** 2)

  step = jax.jit(jax.grad(loss))
  compiled = step.lower(params, x, jax.random.PRNGKey(3)).compile()
  return _flops(compiled), _time(compiled, (params, x, jax.random.PRNGKey(3)), args.repeats)


def bench_model(routing, args):
  cfg = DecoderConfig(vocab_size=256, num_layers=4, d_model=args.d_model, num_heads=4, num_kv_heads=4,
                      head_dim=args.d_model // 4, mlp_dim=8 * args.d_model, routing=routing)
  model = DecoderOnlyModel(cfg)
  params = nn.unbox(model.get_initial_variables(jax.random.PRNGKey(0), {"decoder_input_tokens": (1, args.length)})[
      "params"])
  tx = optax.adafactor(1e-3)
  opt_state = tx.init(params)
  tokens = jax.random.randint(jax.random.PRNGKey(1), (args.batch, args.length + 1), 2, 256)
  batch = {"decoder_input_tokens": tokens[:, :-1], "decoder_target_tokens": tokens[:, 1:],
           "decoder_loss_weights": jnp.ones((args.batch, args.length))}

  def train_step(params, opt_state, batch, rng):
    grads, _ = jax.grad(model.loss_fn, has_aux=True)(params, batch, rng)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  compiled = jax.jit(train_step).lower(params, opt_state, batch, jax.random.PRNGKey(2)).compile()
  return _flops(compiled), _time(compiled, (params, opt_state, batch, jax.random.PRNGKey(2)), args.repeats)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="JSON file for the rows")
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--length", type=int, default=128)
  parser.add_argument("--d_model", type=int, default=256)
  args = parser.parse_args(argv)

  variants = {"ffn_module": (bench_module, "ffn"), "ffn_model": (bench_model, "ffn"),
              "layer_model": (bench_model, "layer")}
  rows = []
  for variant, (bench, routed) in variants.items():
    settings = [("dense", 0.0, RoutingConfig(routed="none"))]
    settings += [(d, s, RoutingConfig(routed=routed, skip_ratio=s, dispatch=d, capacity_factor=1.0))
                 for s in SKIP_RATIOS for d in DISPATCHES]
    dense_flops = dense_seconds = None
    for dispatch, skip_ratio, routing in settings:
      flops, seconds = bench(routing, args)
      if dispatch == "dense":
        dense_flops, dense_seconds = flops, seconds
      rows.append({"variant": variant, "skip_ratio": skip_ratio, "dispatch": dispatch, "flops": flops,
                   "seconds": seconds, "flops_vs_dense": flops / dense_flops,
                   "seconds_vs_dense": seconds / dense_seconds})
      r = rows[-1]
      print(f"{variant:12s} {dispatch:7s} skip={skip_ratio:4.2f}  GFLOPs={flops / 1e9:8.3f} "
            f"({r['flops_vs_dense']:.3f}x)  median={seconds * 1e3:8.2f} ms ({r['seconds_vs_dense']:.3f}x)", flush=True)
  with open(args.out, "w") as f:
    json.dump(rows, f, indent=1)
  print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
  main()
