"""Beam search: hand-computed toy distributions (beam 2 beats greedy; length normalization), beam 1 == greedy on
the routed decoder, and every finished beam's score equals its log-likelihood under the full forward pass."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skip_t5x.model import beam_search as beam_lib
from skip_t5x.model.decoder_only import DecoderOnlyModel
from skip_t5x.model.decoding import DecodeConfig
from tests.model.test_prefill import PROMPT_WIDTH, full_pass, prompt_batch
from tests.model_helpers import init_params, set_routers, tiny_config

PAD, EOS, A, B = 0, 1, 2, 3


def toy_search(first, after, *, beam_size, length, alpha):
  """Beam search over a bigram table: `first` = p(token 0), after[t] = p(next | last token t).

  The step function reads the last token from its own state (a history of fed tokens), so the state must follow
  the beams through reorder_fn.
  """
  table = jnp.log(jnp.asarray([after.get(t, [0.25] * 4) for t in range(4)], jnp.float32) + 1e-30)  # [4, 4]

  def step_fn(history, tokens, step):  # history: [batch * K, length]
    history = jax.lax.dynamic_update_slice_in_dim(history, tokens[:, None], step - 1, axis=1)
    last = jax.lax.dynamic_index_in_dim(history, step - 1, axis=1, keepdims=False)
    return table[last], history

  initial = jnp.log(jnp.asarray([first], jnp.float32) + 1e-30)  # [batch 1, vocab 4]
  history = jnp.zeros((beam_size, length), jnp.int32)
  reorder = lambda h, beams: h[beams.reshape(-1)]  # one example: beam k of it is row k
  return beam_lib.beam_search(initial, step_fn, history, reorder, beam_size=beam_size, max_decode_length=length,
                              eos_id=EOS, alpha=alpha)


def test_beam_two_finds_the_likelier_sequence_greedy_misses():
  first = [0, 0, 0.55, 0.45]  # greedy takes A ...
  after = {A: [0, 0.3, 0.4, 0.3], B: [0, 0.8, 0.1, 0.1]}  # ... but B, EOS (0.45 * 0.8) beats A, A (0.55 * 0.4)
  greedy = toy_search(first, after, beam_size=1, length=2, alpha=0.0)
  np.testing.assert_array_equal(greedy.finished_seqs[0, 0], [A, A])
  np.testing.assert_allclose(greedy.finished_scores[0, 0], np.log(0.55 * 0.4), rtol=1e-6)
  beam = toy_search(first, after, beam_size=2, length=2, alpha=0.0)
  np.testing.assert_array_equal(beam.finished_seqs[0, 0], [B, EOS])
  np.testing.assert_allclose(beam.finished_scores[0], np.log([0.45 * 0.8, 0.55 * 0.4]), rtol=1e-6)


def test_length_normalization_ranks_by_log_prob_over_the_brevity_penalty():
  first = [0, 0.5, 0.5, 0]  # EOS now (p 0.5, length 1) or A then EOS (p 0.45, length 2)
  after = {A: [0, 0.9, 0.05, 0.05]}
  raw = toy_search(first, after, beam_size=2, length=3, alpha=0.0)
  np.testing.assert_array_equal(raw.finished_seqs[0, 0], [EOS, 0, 0])
  np.testing.assert_allclose(raw.finished_scores[0], np.log([0.5, 0.45]), rtol=1e-6)
  normalized = toy_search(first, after, beam_size=2, length=3, alpha=1.0)  # penalties 1 and 7/6
  np.testing.assert_array_equal(normalized.finished_seqs[0, 0], [A, EOS, 0])
  np.testing.assert_allclose(normalized.finished_scores[0], [np.log(0.45) / (7 / 6), np.log(0.5)], rtol=1e-6)
  # no alive beam (best: A, A at p 0.025) can reach the pool any more: the search stopped after 2 of 3 steps
  assert int(normalized.step) == 2


@functools.lru_cache(maxsize=None)
def routed_model():
  model = DecoderOnlyModel(tiny_config(routed="layer", dispatch="gather", capacity_factor=0.8, scan_layers=True))
  return model, set_routers(init_params(model), kernel_scale=0.4, execute_bias=0.3)


@pytest.mark.parametrize("eos_id,alpha", [(-1, 0.6), (None, 0.0)])
def test_beam_one_is_greedy_on_the_routed_decoder(eos_id, alpha):
  model, params = routed_model()
  batch, _ = prompt_batch()
  decode = lambda eos, config: np.asarray(jax.jit(lambda p, b: model.predict_batch(
      p, b, max_decode_length=6, eos_id=eos, decode_config=config))(params, batch))
  if eos_id is None:  # a token greedy emits mid-way in row 0, so that eos really ends a beam
    eos_id = int(decode(-1, DecodeConfig())[0, 2])
  greedy = decode(eos_id, DecodeConfig())
  beam = decode(eos_id, DecodeConfig(beam_size=1, length_penalty_alpha=alpha))
  np.testing.assert_array_equal(beam, greedy)
  assert eos_id == -1 or (greedy == eos_id).any()


def test_every_finished_beam_scores_its_full_forward_log_likelihood():
  model, params = routed_model()
  batch, lengths = prompt_batch()
  beams, decode, alpha = 3, 5, 0.6
  run = jax.jit(lambda p, early: beam_lib.beam_decode(
      model, p, batch["decoder_input_tokens"], jnp.asarray(lengths), beam_size=beams, max_decode_length=decode,
      eos_id=-1, alpha=alpha, chunk_length=4, early_stop=early), static_argnums=1)
  state, full_length = jax.device_get(run(params, True)), jax.device_get(run(params, False))
  np.testing.assert_array_equal(state.finished_seqs, full_length.finished_seqs)
  seqs = state.finished_seqs.reshape(len(lengths) * beams, decode)  # [batch * K, decode]
  row_lengths = np.repeat(lengths, beams)
  real = row_lengths + decode
  full = np.zeros((len(seqs), PROMPT_WIDTH + decode), np.int32)
  for row, (length, seq) in enumerate(zip(row_lengths, seqs)):
    full[row, :real[row]] = np.concatenate([np.asarray(batch["decoder_input_tokens"][row // beams, :length]), seq])
  logits, _ = full_pass(model)(params, jnp.asarray(full), jnp.asarray(real))
  log_probs = jax.nn.log_softmax(np.asarray(logits), axis=-1)
  likelihood = np.array([sum(float(log_probs[row, length - 1 + j, seq[j]]) for j in range(decode))
                         for row, (length, seq) in enumerate(zip(row_lengths, seqs))])
  expected = likelihood.reshape(len(lengths), beams) / ((5.0 + decode) / 6.0) ** alpha
  np.testing.assert_allclose(state.finished_scores, expected, rtol=1e-4, atol=1e-4)
  assert all(len({tuple(s) for s in row}) == beams for row in state.finished_seqs)  # distinct beams


def test_beam_reorder_of_a_batch_sharded_cache_needs_no_collective():
  from jax.sharding import Mesh, NamedSharding, PartitionSpec  # pylint: disable=import-outside-toplevel

  from skip_t5x.model.decode_state import take_beams  # pylint: disable=import-outside-toplevel

  batch, beams = 8, 3
  mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
  rows = lambda spec: NamedSharding(mesh, PartitionSpec(*spec))
  cache = {"kv": {"cached_key": jnp.arange(batch * beams * 4.0).reshape(batch * beams, 4), "cache_index": 0},
           "skip": {"executed_count": jnp.arange(2 * batch * beams).reshape(2, batch * beams)}}  # scanned layers
  axes = {("kv", "cached_key"): 0, ("kv", "cache_index"): None, ("skip", "executed_count"): 1}
  shardings = {"kv": {"cached_key": rows(["data"]), "cache_index": rows([])},
               "skip": {"executed_count": rows([None, "data"])}}
  cache = jax.device_put(cache, shardings)
  chosen = jnp.asarray(np.random.default_rng(0).integers(0, beams, (batch, beams)), jnp.int32)
  reorder = jax.jit(lambda c, b: take_beams(c, axes, b), out_shardings=shardings)
  compiled = reorder.lower(cache, jax.device_put(chosen, rows(["data"]))).compile().as_text()
  assert not any(op in compiled for op in ("all-gather", "all-to-all", "collective-permute", "all-reduce"))
  got = jax.device_get(reorder(cache, jax.device_put(chosen, rows(["data"]))))
  source = (np.arange(batch)[:, None] * beams + np.asarray(chosen)).reshape(-1)  # row b * K + k <- b * K + chosen
  np.testing.assert_array_equal(got["kv"]["cached_key"], np.asarray(cache["kv"]["cached_key"])[source])
  np.testing.assert_array_equal(got["skip"]["executed_count"], np.asarray(cache["skip"]["executed_count"])[:, source])
