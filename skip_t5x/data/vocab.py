"""Vocabularies: the gin-configured choice that every registered task uses.

Tasks are registered at import time, before gin is parsed, so they hold a `DeferredVocabulary`: a seqio.Vocabulary
that looks the real one up (through the gin-configurable `vocabulary()`) whenever it is used. Binding, e.g.

    skip_t5x.data.vocab.vocabulary.kind = 'sentencepiece'
    skip_t5x.data.vocab.vocabulary.sentencepiece_model = 'gs://bucket/spm/cc_all.32000.100extra/sentencepiece.model'

switches every task (pretraining and evaluation) to that model; `kind = 'byte'` selects seqio.ByteVocabulary.
The default is the small SentencePiece model shipped in skip_t5x/data/assets/, trained on the embedded corpus's
train split by `python -m skip_t5x.data.train_vocab` (pad=0, eos=1, unk=2, no bos; byte fallback, so no text is
<unk>; identity normalization, so decoding returns the text).
"""
from __future__ import annotations

import functools
import os
from typing import Optional

import gin
import seqio

VOCAB_KINDS = ("sentencepiece", "byte")
ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
EMBEDDED_SPM_NAME = "embedded_spm_2048"
EMBEDDED_SPM_PATH = os.path.join(ASSETS_DIR, EMBEDDED_SPM_NAME + ".model")


@functools.lru_cache(maxsize=16)
def _sentencepiece(path: str, extra_ids: int) -> seqio.SentencePieceVocabulary:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (gfile reads local and gs:// paths)

  if not tf.io.gfile.exists(path):
    hint = (" Run `python -m skip_t5x.data.train_vocab` to rebuild the shipped model."
            if path == EMBEDDED_SPM_PATH else "")
    raise FileNotFoundError(f"SentencePiece model not found: {path!r}.{hint}")
  vocab = seqio.SentencePieceVocabulary(path, extra_ids=extra_ids)
  vocab.load_model()  # fail here, naming the file, rather than inside a tf.data map
  if vocab.tokenizer.pad_id() != 0 or vocab.eos_id != 1:
    raise ValueError(
        f"SentencePiece model {path!r} has pad_id={vocab.tokenizer.pad_id()} eos_id={vocab.eos_id}; "
        "seqio and the model need pad_id=0 and eos_id=1 (train with pad_id=0, eos_id=1, unk_id=2, bos_id=-1)")
  return vocab


@functools.lru_cache(maxsize=4)
def _byte(extra_ids: int) -> seqio.ByteVocabulary:
  return seqio.ByteVocabulary(extra_ids=extra_ids)


@gin.configurable
def vocabulary(kind: str = "sentencepiece", sentencepiece_model: Optional[str] = None,
               extra_ids: int = 0) -> seqio.Vocabulary:
  """The vocabulary selected by gin (cached per argument set).

  Args:
    kind: 'sentencepiece' or 'byte'.
    sentencepiece_model: path (local or gs://) of a SentencePiece model; None means the shipped embedded model.
    extra_ids: sentinel ids appended after the base vocabulary (as in T5); 0 for plain language modeling.
  """
  if kind not in VOCAB_KINDS:
    raise ValueError(f"vocabulary kind must be one of {VOCAB_KINDS}, got kind={kind!r}")
  if extra_ids < 0:
    raise ValueError(f"vocabulary extra_ids must be >= 0, got extra_ids={extra_ids}")
  if kind == "byte":
    if sentencepiece_model is not None:
      raise ValueError(f"kind='byte' takes no sentencepiece_model (got {sentencepiece_model!r})")
    return _byte(extra_ids)
  return _sentencepiece(sentencepiece_model or EMBEDDED_SPM_PATH, extra_ids)


class DeferredVocabulary(seqio.Vocabulary):
  """A seqio.Vocabulary that forwards every call to the gin-selected `vocabulary()` at the time of the call."""

  def __init__(self):
    super().__init__(extra_ids=0)

  @property
  def resolved(self) -> seqio.Vocabulary:
    return vocabulary()

  # Everything below forwards to the resolved vocabulary's public API.
  @property
  def bos_id(self):
    return self.resolved.bos_id

  @property
  def eos_id(self):
    return self.resolved.eos_id

  @property
  def pad_id(self):
    return self.resolved.pad_id

  @property
  def unk_id(self):
    return self.resolved.unk_id

  @property
  def extra_ids(self):
    return self.resolved.extra_ids

  @property
  def vocab_size(self):
    return self.resolved.vocab_size

  @property
  def _base_vocab_size(self):
    return self.resolved._base_vocab_size  # pylint: disable=protected-access

  def encode(self, s):
    return self.resolved.encode(s)

  def decode(self, ids):
    return self.resolved.decode(ids)

  def encode_tf(self, s):
    return self.resolved.encode_tf(s)

  def decode_tf(self, ids):
    return self.resolved.decode_tf(ids)

  def _encode(self, s):
    return self.resolved.encode(s)

  def _decode(self, ids):
    return self.resolved.decode(ids)

  def _encode_tf(self, s):
    return self.resolved.encode_tf(s)

  def _decode_tf(self, ids):
    return self.resolved.decode_tf(ids)

  def __eq__(self, other):
    if isinstance(other, DeferredVocabulary):
      return True
    return isinstance(other, seqio.Vocabulary) and self.resolved == other

  def __hash__(self):
    return hash(DeferredVocabulary)

  def __str__(self):
    return f"DeferredVocabulary({self.resolved})"


DEFAULT_VOCABULARY = DeferredVocabulary()


def output_features(with_inputs: bool) -> dict:
  """seqio output features over the deferred vocabulary: {'targets'} for LM, plus 'inputs' for 1-shot tasks.

  No feature appends EOS on its own: pretraining appends one per document before concatenation, and 1-shot
  scoring must measure the candidate text alone.
  """
  features = {"targets": seqio.Feature(DEFAULT_VOCABULARY, add_eos=False, required=True)}
  if with_inputs:
    features["inputs"] = seqio.Feature(DEFAULT_VOCABULARY, add_eos=False, required=True)
  return features
