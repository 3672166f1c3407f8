"""Prompt continuation with a restored checkpoint: ``infer()`` (gin: ``infer.*``, see gin/runs/infer.gin), the
work behind ``python -m skip_t5x.infer``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import gin
import jax
import numpy as np

from skip_t5x import parallel
from skip_t5x.model.decoding import DecodeConfig
from skip_t5x.training import checkpoints as checkpoints_lib


def make_prompt_batch(prompts: Sequence[Sequence[int]], rows: int) -> Dict[str, np.ndarray]:
  """PrefixLM layout: decoder_input_tokens = [0, p_1 .. p_n, 0 ...], decoder_causal_attention = 1 on [0, n].

  Padded to ``rows`` rows (copies of the last prompt) so that the batch divides the data-parallel mesh axes.
  """
  width = max(len(p) for p in prompts) + 1
  tokens = np.zeros((rows, width), np.int32)  # [batch, prompt_width]
  causal = np.zeros((rows, width), np.int32)
  for row in range(rows):
    prompt = prompts[min(row, len(prompts) - 1)]
    tokens[row, 1:len(prompt) + 1] = prompt
    causal[row, :len(prompt) + 1] = 1
  return {"decoder_input_tokens": tokens, "decoder_causal_attention": causal}


def decision_summary(decisions: Dict[str, np.ndarray], num_positions: int) -> Dict[str, float]:
  """{module: fraction of the first ``num_positions`` positions that executed it} for one row."""
  return {name: float(np.mean(mask[:num_positions])) for name, mask in decisions.items()}


@gin.configurable
def infer(model=gin.REQUIRED,
          model_dir: str = gin.REQUIRED,
          prompts: Sequence[str] = (),
          max_decode_length: int = 64,
          temperature: float = 0.0,
          seed: int = 0,
          mesh: Optional[parallel.MeshConfig] = None,
          checkpoint_step: Optional[int] = None,
          show_decisions: bool = True) -> List[Dict[str, Any]]:
  """Restores MODEL_DIR's params (latest or ``checkpoint_step``) and continues every prompt.

  Returns one dict per prompt: prompt, continuation (text), tokens (ids), and module_density
  ({routed module: executed fraction over prompt + continuation}) when ``show_decisions``.
  """
  from skip_t5x.data import vocab as vocab_lib  # pylint: disable=g-import-not-at-top

  if not prompts:
    raise ValueError("no prompt given (--prompt=TEXT)")
  if max_decode_length <= 0:
    raise ValueError(f"infer.max_decode_length={max_decode_length} must be positive")
  if temperature < 0:
    raise ValueError(f"infer.temperature={temperature} must be >= 0 (0 = greedy)")
  vocabulary = vocab_lib.vocabulary()
  placement = parallel.place_model(model, mesh, None, min_vocab_size=vocabulary.vocab_size)
  encoded = [list(vocabulary.encode(p)) for p in prompts]
  if any(not e for e in encoded):
    raise ValueError(f"a prompt encodes to no tokens: {[p for p, e in zip(prompts, encoded) if not e]}")
  shards = parallel.data_parallel_size(placement.mesh)
  rows = -(-len(prompts) // shards) * shards
  local = make_prompt_batch(encoded, rows)
  placement = placement.with_length(local["decoder_input_tokens"].shape[1])
  params, step = checkpoints_lib.restore_params(model_dir, placement.abstract_params(), checkpoint_step)
  if getattr(getattr(getattr(model, "config", None), "routing", None), "inference_skip_ratio", None) is not None:
    from skip_t5x.evaluation import calibration  # pylint: disable=import-outside-toplevel
    model = calibration.load_for_inference(model, model_dir, step)  # INFERENCE_SKIP_RATIO: eval's calibration
  tokens, decisions = _generate(model, placement, params, local, max_decode_length, temperature, seed,
                                vocabulary.eos_id)
  return [_result(prompt, encoded[row], tokens[row], {k: v[row] for k, v in decisions.items()}, step,
                  vocabulary, show_decisions) for row, prompt in enumerate(prompts)]


def _generate(model, placement: parallel.Placement, params, local, max_decode_length: int, temperature: float,
              seed: int, eos_id: int):
  """(tokens [rows, max_decode_length], {module: [rows, positions] bool}) as host numpy arrays.

  Decodes as the gin-configured DecodeConfig says (prefill + greedy/sampling by default); beam search
  (DecodeConfig.beam_size > 1) returns no routing decisions.
  """
  decode_config = DecodeConfig().validate()
  with_decisions = decode_config.beam_size == 1
  with placement.context():
    batch = parallel.make_global_batch(local, placement.mesh, placement.rules)
    predict = jax.jit(lambda p, b, r: model.predict_batch(
        p, b, r, max_decode_length=max_decode_length, temperature=temperature, eos_id=eos_id,
        return_decisions=with_decisions, decode_config=decode_config))
    output = predict(params, batch, jax.random.key(seed))
    tokens, decisions = output if with_decisions else (output, {})
    tokens = np.asarray(jax.device_get(tokens))  # [rows, max_decode_length]
    decisions = {k: np.asarray(v) for k, v in jax.device_get(decisions).items()}  # [rows, positions]
  return tokens, decisions


def _result(prompt: str, prompt_ids, row_tokens, row_decisions, step, vocabulary, show_decisions: bool):
  ids = [int(t) for t in row_tokens]
  if vocabulary.eos_id in ids:
    ids = ids[:ids.index(vocabulary.eos_id)]
  result = {"prompt": prompt, "continuation": vocabulary.decode(ids), "tokens": ids, "step": step}
  if show_decisions and row_decisions:
    # Positions fed to the model: BOS + prompt tokens + the generated ones (the last is never fed back).
    positions = 1 + len(prompt_ids) + max(len(ids) - 1, 0)
    result["module_density"] = decision_summary(row_decisions, positions)
  return result


def format_results(results: Sequence[Dict[str, Any]]) -> str:
  lines = []
  for r in results:
    lines.append(f"[step {r['step']}] {r['prompt']!r} -> {r['continuation']!r}")
    if r.get("module_density"):
      densities = ", ".join(f"{k} {v:.2f}" for k, v in r["module_density"].items())
      lines.append(f"  executed share per routed module: {densities}")
  return "\n".join(lines)
