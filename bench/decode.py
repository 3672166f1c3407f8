"""Generation benchmark: token-by-token against prefill decoding, side by side in one run.

    python bench/decode.py --out bench/decode.json [--batch 8 --prompt 512 --new_tokens 32 --repeats 3]

For the CPU demo model (gin/models/dense_small.gin, skip_small.gin) and a larger one (the same files, 8 layers of
d_model 512), and for the variants dense, skip masked and skip gather, each method is timed twice (the fastest of
--repeats runs after a compile, since a shared machine only ever adds time; the process CPU time of that run
too): generating 1 token (the prompt phase: the whole prompt plus the first token) and generating --new_tokens
(no eos, so every row decodes them all). Rows: model, variant, method, prompt_seconds, total_seconds,
decode_tokens_per_s, the prefill speedups, and whether both methods produced the same tokens. The decode rate is
batch * (new_tokens - 1) / (total_seconds - prompt_seconds) for prefill; token-by-token runs the same step for
prompt and decode positions, so its rate is batch / (total_seconds / steps) over all prompt + new_tokens - 1 steps
(a difference of two long, noisy timings would hide 31 short steps).

--demo_run DIR (a run trained by gin/runs/demo.gin, e.g. by `make run`) adds the demo evaluation's generation: the
runner's predict_fn over the embedded 1-shot LAMBADA task with gin/runs/demo_eval.gin's settings, per method,
as examples per second including the compile (what the evaluation prints) and without it (the fastest of two more
passes, the methods interleaved). `--models ''` times only that.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # noqa: E402
import gin  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from skip_t5x import cli, gin_utils  # noqa: E402
from skip_t5x.model.decoder_only import DecoderOnlyModel  # noqa: E402
from skip_t5x.model.decoding import DecodeConfig  # noqa: E402

METHODS = ("token_by_token", "prefill")
VARIANTS = {
    "dense": ("models/dense_small.gin", []),
    "skip_masked": ("models/skip_small.gin", ["DISPATCH = 'masked'"]),
    "skip_gather": ("models/skip_small.gin", ["DISPATCH = 'gather'"]),
}
MODELS = {
    "demo": [],  # 4 layers, d_model 128, vocabulary 2048
    "larger": ["DecoderConfig.num_layers = 8", "DecoderConfig.d_model = 512", "DecoderConfig.num_heads = 8",
               "DecoderConfig.num_kv_heads = 8", "DecoderConfig.head_dim = 64", "DecoderConfig.mlp_dim = 2048"],
}


def build_model(gin_file: str, bindings) -> DecoderOnlyModel:
  gin.clear_config()
  try:
    gin_utils.parse_gin([gin_file], list(bindings), finalize=False)
    return DecoderOnlyModel()
  finally:
    gin.clear_config()


def best_seconds(fn, args, repeats: int) -> tuple[float, float]:
  """(wall seconds, process CPU seconds) of the fastest of `repeats` runs after a warm-up (compile) run."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(*args))
    times.append((time.perf_counter() - start, time.process_time() - cpu))
  return min(times)


def bench_variant(model: DecoderOnlyModel, args) -> list[dict]:
  params = nn.unbox(model.get_initial_variables(jax.random.PRNGKey(0), {"decoder_input_tokens": (1, 16)})["params"])
  tokens = jax.random.randint(jax.random.PRNGKey(1), (args.batch, args.prompt), 2, model.config.vocab_size)
  batch = {"decoder_input_tokens": tokens.at[:, 0].set(0),  # BOS first; every row's prompt is the full width
           "decoder_causal_attention": jnp.ones((args.batch, args.prompt), jnp.int32)}
  rows, outputs = [], {}
  for method in METHODS:
    config = DecodeConfig(method=method)
    predict = lambda n: jax.jit(lambda p, b: model.predict_batch(p, b, max_decode_length=n, eos_id=-1,
                                                                 decode_config=config))
    prompt_seconds, prompt_cpu = best_seconds(predict(1), (params, batch), args.repeats)
    generate = predict(args.new_tokens)
    total_seconds, total_cpu = best_seconds(generate, (params, batch), args.repeats)
    outputs[method] = np.asarray(generate(params, batch))
    if method == "token_by_token":
      decode_rate = args.batch * (args.prompt + args.new_tokens - 1) / total_seconds
    else:
      decode_rate = args.batch * (args.new_tokens - 1) / max(total_seconds - prompt_seconds, 1e-9)
    rows.append({"method": method, "prompt_seconds": prompt_seconds, "total_seconds": total_seconds,
                 "decode_tokens_per_s": decode_rate,
                 "prompt_cpu_seconds": prompt_cpu, "total_cpu_seconds": total_cpu})
  same = bool(np.array_equal(outputs["token_by_token"], outputs["prefill"]))
  reference = rows[0]
  for row in rows:
    row.update(prompt_speedup=reference["prompt_seconds"] / row["prompt_seconds"],
               total_speedup=reference["total_seconds"] / row["total_seconds"], tokens_match=same)
  return rows


def bench_demo_generation(run_dir: str, passes: int = 2) -> list[dict]:
  """The demo evaluation's generation (embedded 1-shot LAMBADA), per method, through the evaluation runner: a
  compiling pass, then `passes` steady passes with the methods interleaved (the fastest of them is reported)."""
  import tempfile  # pylint: disable=import-outside-toplevel

  from skip_t5x import parallel  # pylint: disable=import-outside-toplevel
  from skip_t5x.data import vocab as vocab_lib  # pylint: disable=import-outside-toplevel
  from skip_t5x.evaluation import evaluate as evaluate_lib  # pylint: disable=import-outside-toplevel
  from skip_t5x.evaluation import runner as runner_lib  # pylint: disable=import-outside-toplevel
  from skip_t5x.training import checkpoints  # pylint: disable=import-outside-toplevel

  gin.clear_config()
  files = gin_utils.train_config_first(run_dir, ["runs/demo_eval.gin"])
  gin_utils.parse_gin(files, [], extra_bindings={"MODEL_DIR": run_dir}, finalize=False)
  model, lengths = gin_utils.evaluate_macro("MODEL"), gin_utils.query_macro("EVAL_TASK_FEATURE_LENGTHS")
  batch_size, decode_length = gin_utils.query_macro("EVAL_BATCH_SIZE"), gin_utils.query_macro("MAX_DECODE_LENGTH")
  task = "embedded_1shot_lambada"
  evaluator = evaluate_lib.build_evaluator(task, dict(lengths), tempfile.mkdtemp())
  dataset = evaluator.cached_model_datasets[task]
  vocabulary = vocab_lib.vocabulary()
  placement = parallel.place_model(model, parallel.MeshConfig(), None, batch_size=batch_size,
                                   min_vocab_size=vocabulary.vocab_size)
  placement = placement.with_length(int(evaluator.model_feature_shapes["decoder_input_tokens"][0]))
  params, _ = checkpoints.restore_params(run_dir, placement.abstract_params())
  gin.clear_config()
  runners = {method: runner_lib.ModelRunner(model, params, placement.mesh, placement.rules, batch_size,
                                            decode_length, vocabulary.eos_id, decode_config=DecodeConfig(method=method))
             for method in METHODS}
  outputs, timings = {}, {method: [] for method in METHODS}
  for _ in range(1 + passes):  # the first pass compiles, as the evaluation does; passes interleave the methods
    for method, runner in runners.items():
      start, cpu = time.perf_counter(), time.process_time()
      outputs[method] = runner.predict_fn(dataset)
      timings[method].append((time.perf_counter() - start, time.process_time() - cpu))
  rows = []
  for method in METHODS:
    count, (compile_pass, *steady) = len(outputs[method]), timings[method]
    seconds, cpu_seconds = min(steady)  # the fastest steady pass: load from other processes only adds time
    rows.append({"model": "demo_eval", "variant": task, "method": method, "examples": count,
                 "examples_per_s_with_compile": count / compile_pass[0], "examples_per_s": count / seconds,
                 "seconds": seconds, "cpu_seconds": cpu_seconds})
  same = all(np.array_equal(a[1], b[1]) for a, b in zip(*outputs.values()))
  for row in rows:
    row.update(speedup=rows[0]["seconds"] / row["seconds"], tokens_match=same)
    print(f"demo_eval {task} {row['method']:15s} {row['examples_per_s']:7.1f} examples/s "
          f"({row['examples_per_s_with_compile']:.1f} with compile)  {row['speedup']:.1f}x  same={same}", flush=True)
  return rows


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="JSON file for the rows")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--prompt", type=int, default=512)
  parser.add_argument("--new_tokens", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {sorted(MODELS)}")
  parser.add_argument("--demo_run", default="", help="a trained demo run dir: also time its evaluation's generation")
  args = parser.parse_args(argv)
  if args.new_tokens < 2 or args.prompt < 2 or args.batch < 1:
    raise ValueError(f"need --new_tokens >= 2, --prompt >= 2, --batch >= 1: got {vars(args)}")
  unknown = set(filter(None, args.models.split(","))) - set(MODELS)  # --models '': the demo evaluation only
  if unknown:
    raise ValueError(f"--models: unknown {sorted(unknown)}; choose from {sorted(MODELS)}")
  cli.import_registrations()
  rows = []
  print(f"{'model':7s} {'variant':12s} {'method':15s} {'prompt s':>9s} {'total s':>8s} {'decode tok/s':>12s} "
        f"{'prompt x':>8s} {'total x':>8s} same", flush=True)
  for model_name in filter(None, args.models.split(",")):
    for variant, (gin_file, bindings) in VARIANTS.items():
      model = build_model(gin_file, bindings + MODELS[model_name])
      for row in bench_variant(model, args):
        row = {"model": model_name, "variant": variant, "batch": args.batch, "prompt": args.prompt,
               "new_tokens": args.new_tokens, "device": jax.devices()[0].platform, **row}
        rows.append(row)
        print(f"{model_name:7s} {variant:12s} {row['method']:15s} {row['prompt_seconds']:9.3f} "
              f"{row['total_seconds']:8.3f} {row['decode_tokens_per_s']:12.1f} {row['prompt_speedup']:8.1f} "
              f"{row['total_speedup']:8.1f} {row['tokens_match']}", flush=True)
  if args.demo_run:
    rows += bench_demo_generation(args.demo_run)
  with open(args.out, "w") as f:
    json.dump(rows, f, indent=1)
  print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
  main()
