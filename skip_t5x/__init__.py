"""skip_t5x: learning-to-skip decoder-only language models (arXiv 2311.15436) in JAX/Flax, T5X style.

Packages, lowest first (each may import only those before it; tests/test_layering.py keeps it so):
  layers/      pure Flax modules: routers and policies, dispatch, skip, attention, mlp, norms, embed, kv cache
  data/        vocabularies, pretraining tasks, the 1-shot suite and its metrics (no model code)
  model/       the routed decoder, the model API (losses, scoring, decoding) and analytic FLOPs
  parallel/    mesh, logical axis rules, shardings, sharded init, the shared set-up (placement), jax.distributed
  training/    run spec and program, train step, loop, optimizers, checkpoints, input pipeline, metrics, AOT
  evaluation/  seqio runner, evaluate(), summary, prompt continuation
Commands (python -m skip_t5x.X): train, eval, infer, aot, plot_metrics, thin modules over cli.py and gin_utils.py.
"""
from skip_t5x import legacy_names as _legacy_names
from skip_t5x import platforms as _platforms

__version__ = "0.1.0"
_legacy_names.install()
_platforms.quiet_absent_tpu()  # before any jax backend starts
