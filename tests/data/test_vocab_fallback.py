"""The shipped SentencePiece model: byte fallback (no text maps to <unk>), exact round trips, reproducible."""
import os
import re

import pytest
from sentencepiece import sentencepiece_model_pb2

from skip_t5x.data import train_vocab
from skip_t5x.data import vocab as vocab_lib
from tests.data import fewshot_fixtures

GIN_MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "gin", "models")
# Characters the first shipped model (no byte fallback) encoded as <unk>, and others it never saw.
FORMERLY_UNK = ("?Q@&$^ \u2018quoted\u2019 \u201cquoted\u201d 1\u20132 a\u2014b \u2026 \u00e9\u00df \u65e5\u672c "
                "\U0001f642 \ufffd")


def _proto():
  proto = sentencepiece_model_pb2.ModelProto()
  with open(vocab_lib.EMBEDDED_SPM_PATH, "rb") as f:
    proto.ParseFromString(f.read())
  return proto


def test_shipped_model_has_byte_fallback_and_the_seqio_ids():
  proto = _proto()
  assert proto.trainer_spec.byte_fallback and proto.normalizer_spec.name == "identity"
  vocab = vocab_lib.vocabulary()
  assert (vocab.vocab_size, vocab.pad_id, vocab.eos_id, vocab.unk_id) == (2048, 0, 1, 2)
  pieces = [p.piece for p in proto.pieces]
  assert pieces[:4] == ["<pad>", "</s>", "<unk>", "\n"]
  assert pieces[4:260] == [f"<0x{b:02X}>" for b in range(256)]  # one id per byte


@pytest.mark.parametrize("text", [FORMERLY_UNK, "Q: Who wrote Hamlet?\nA:", "a\n\nb", "x\n y", "tab\there"])
def test_no_text_maps_to_unk_and_decoding_gives_it_back(text):
  vocab = vocab_lib.vocabulary()
  ids = vocab.encode(text)
  assert vocab.unk_id not in ids
  assert vocab.decode(ids) == text


def test_byte_fallback_spells_unseen_characters_as_utf8_bytes():
  vocab = vocab_lib.vocabulary()
  ids = vocab.encode("\U0001f642")  # 4 UTF-8 bytes F0 9F 99 82, none of them a learned piece
  byte_ids = [4 + b for b in "\U0001f642".encode("utf-8")]
  assert ids[-4:] == byte_ids


def test_every_golden_prompt_and_candidate_round_trips():
  vocab = vocab_lib.vocabulary()
  for name, goldens in fewshot_fixtures.GOLDEN.items():
    for golden in goldens:
      prompts = golden.prompts if isinstance(golden.prompts, list) else [golden.prompts]
      for prompt in prompts:
        text = golden.demonstration + "\n\n" + prompt
        assert vocab.decode(vocab.encode(text)) == text, name
        for target in golden.targets:  # what the model reads: prompt tokens, then candidate tokens
          assert vocab.decode(vocab.encode(text) + vocab.encode(target)) == text + target, name


def test_vocab_fits_the_tiny_and_small_models():
  for name in ("dense_tiny", "dense_small"):  # skip_tiny/skip_small include these
    with open(os.path.join(GIN_MODELS, f"{name}.gin"), encoding="utf-8") as f:
      size = int(re.search(r"^VOCAB_SIZE = (\d+)$", f.read(), re.M).group(1))
    assert vocab_lib.vocabulary().vocab_size <= size, name


def test_shipped_model_is_what_train_vocab_writes(tmp_path):
  path = train_vocab.main([f"--output={tmp_path / 'spm'}"])
  with open(path, "rb") as fresh, open(vocab_lib.EMBEDDED_SPM_PATH, "rb") as shipped:
    assert fresh.read() == shipped.read()
