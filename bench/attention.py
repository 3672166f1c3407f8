"""Attention implementations side by side: train-step time and compiled memory of a small decoder, per length.

    python bench/attention.py --out bench/attention.json [--lengths 256,2048] [--time_lengths 256] [--repeats 5]

For each length and each `DecoderConfig.attention` ('dense_scores', 'blockwise', 'auto'), compiles the loss and
gradients of a small dense decoder (remat off) and reports XLA's memory_analysis() of the compiled step
(temporaries: activations kept for the backward pass, scores, gradients) and, for --time_lengths, the median wall
time of the step on this machine's default backend (CPU here; the steps are interleaved and the minimum over
repeats is compared, so load from other processes hits every implementation alike). Ratios are against
'dense_scores' (the attention before blockwise existed). `attention alone` is the same for the gradient of one
attention call. The default model (8 heads of 32) has the score-to-activation ratio of the 1.7B model (heads of
128) at four times the length: length / head_dim = 64 at 2048 here, as at 8192 there. Prints a table and writes
the rows as JSON.
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

from skip_t5x.layers import fused_attention  # noqa: E402
from skip_t5x.layers.attention import attention_context  # noqa: E402
from skip_t5x.layers.attention_mask import contiguous_mask  # noqa: E402
from skip_t5x.layers.routing import RoutingConfig  # noqa: E402
from skip_t5x.model.decoder import DecoderConfig  # noqa: E402
from skip_t5x.model.decoder_only import DecoderOnlyModel  # noqa: E402

IMPLEMENTATIONS = ("dense_scores", "blockwise", "auto")


def compiled_step(config: DecoderConfig, batch_size: int, length: int):
  """(compiled loss-and-gradients step, its arguments) for random tokens."""
  model = DecoderOnlyModel(config)
  params = nn.unbox(model.get_initial_variables(jax.random.PRNGKey(0), {"decoder_input_tokens": (1, length)})[
      "params"])
  tokens = jax.random.randint(jax.random.PRNGKey(1), (batch_size, length + 1), 2, config.vocab_size)
  batch = {"decoder_input_tokens": tokens[:, :-1], "decoder_target_tokens": tokens[:, 1:],
           "decoder_loss_weights": jnp.ones((batch_size, length), jnp.float32)}

  def step(params, batch):
    return jax.grad(lambda p: model.loss_fn(p, batch, None)[0])(params)

  return jax.jit(step).lower(params, batch).compile(), (params, batch)


def step_seconds(steps: dict, repeats: int) -> dict:
  """{name: (min, median) seconds} of each compiled step, the steps interleaved round by round so that load from
  other processes hits them alike; the minimum is the least disturbed run."""
  for compiled, args in steps.values():
    jax.block_until_ready(compiled(*args))  # warm up
  times = {name: [] for name in steps}
  for _ in range(repeats):
    for name, (compiled, args) in steps.items():
      start = time.perf_counter()
      jax.block_until_ready(compiled(*args))
      times[name].append(time.perf_counter() - start)
  return {name: (min(t), statistics.median(t)) for name, t in times.items()}


def attention_only_temp_bytes(implementation: str, batch: int, length: int, heads: int, head_dim: int) -> int:
  """Temporaries of the gradient of one causal attention call alone [batch, length, heads, head_dim]."""
  shape = jax.ShapeDtypeStruct((batch, length, heads, head_dim), jnp.float32)
  mask = contiguous_mask(batch, length)
  loss = lambda q, k, v: jnp.sum(attention_context(q, k, v, mask, implementation) ** 2)
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(shape, shape, shape).compile()
  return int(compiled.memory_analysis().temp_size_in_bytes)


def bench_length(base: DecoderConfig, length: int, args, timed: bool) -> list:
  rows, steps = [], {}
  for implementation in IMPLEMENTATIONS:
    config = dataclasses.replace(base, attention=implementation).validate()
    compiled, step_args = compiled_step(config, args.batch, length)
    steps[implementation] = (compiled, step_args)
    memory = compiled.memory_analysis()
    rows.append({"length": length, "batch": args.batch, "attention": implementation,
                 "temp_bytes": int(memory.temp_size_in_bytes), "argument_bytes": int(memory.argument_size_in_bytes),
                 "attention_only_temp_bytes": attention_only_temp_bytes(
                     implementation, args.batch, length, base.num_heads, base.head_dim)})
  seconds = step_seconds(steps, args.repeats) if timed else {}
  reference = rows[0]
  for row in rows:
    row["temp_vs_dense_scores"] = row["temp_bytes"] / reference["temp_bytes"]
    row["attention_only_temp_vs_dense_scores"] = (
        row["attention_only_temp_bytes"] / reference["attention_only_temp_bytes"])
    if timed:
      row["seconds_min"], row["seconds_median"] = seconds[row["attention"]]
      row["seconds_vs_dense_scores"] = row["seconds_min"] / seconds[reference["attention"]][0]
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", help="JSON file for the rows")
  parser.add_argument("--lengths", default="256,2048", help="comma-separated sequence lengths (memory)")
  parser.add_argument("--time_lengths", default="256", help="lengths whose step is also timed")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--d_model", type=int, default=256)
  parser.add_argument("--head_dim", type=int, default=32)
  parser.add_argument("--num_layers", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args(argv)
  heads = args.d_model // args.head_dim
  base = DecoderConfig(vocab_size=512, num_layers=args.num_layers, d_model=args.d_model, num_heads=heads,
                       num_kv_heads=heads, head_dim=args.head_dim, mlp_dim=4 * args.d_model,
                       routing=RoutingConfig(routed="none", skip_ratio=0.0))
  timed = {int(n) for n in args.time_lengths.split(",") if n}
  lengths = sorted({int(n) for n in args.lengths.split(",")} | timed)
  platform = fused_attention.target_platform()
  print(f"backend {platform}; blockwise tiles {fused_attention.blockwise_block_size(platform)}; {heads} heads x "
        f"{args.head_dim}, batch {args.batch}", flush=True)
  rows = []
  for length in lengths:
    for row in bench_length(base, length, args, length in timed):
      rows.append(row)
      timing = (f"  step min {row['seconds_min'] * 1e3:7.1f} ms ({row['seconds_vs_dense_scores']:.2f}x), "
                f"median {row['seconds_median'] * 1e3:7.1f} ms" if "seconds_min" in row else "")
      print(f"length {length:5d} {row['attention']:12s} step temp {row['temp_bytes'] / 2**20:7.1f} MiB "
            f"({row['temp_vs_dense_scores']:.3f}x), attention alone {row['attention_only_temp_bytes'] / 2**20:7.1f} "
            f"MiB ({row['attention_only_temp_vs_dense_scores']:.3f}x){timing}", flush=True)
  if args.out:
    with open(args.out, "w") as f:
      json.dump({"backend": jax.default_backend(), "rows": rows}, f, indent=1)
    print(f"wrote {len(rows)} rows to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
