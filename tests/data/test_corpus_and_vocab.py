"""Embedded corpus, vocabularies and the pretraining LM tasks, including bad data."""
import json
import os

import gin
import numpy as np
import pytest
import seqio
import tensorflow as tf

from skip_t5x.data import embedded_corpus, lm_tasks, sources, train_vocab
from skip_t5x.data import vocab as vocab_lib


@pytest.fixture(autouse=True)
def _clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def test_embedded_corpus_is_deterministic_and_split_disjoint():
  fresh = embedded_corpus.extract_documents()
  info = embedded_corpus.corpus_info(fresh)
  assert info == embedded_corpus.corpus_info(embedded_corpus.load_documents())  # cache or a second extraction
  assert info.num_chars > 1_500_000 and info.num_documents > 300
  ids = [d.doc_id for d in fresh]
  assert len(set(ids)) == len(ids)
  assert ids[0].startswith("topic/") and ids[-1].startswith("module/")
  splits = embedded_corpus.split_documents(fresh)
  train_ids = {d.doc_id for d in splits["train"]}
  held_out = {d.doc_id for d in splits["validation"]}
  assert not train_ids & held_out and train_ids | held_out == set(ids)
  assert 0.05 < len(held_out) / len(ids) < 0.2
  # the split is a pure function of the id
  assert all(embedded_corpus.split_of(i) == "validation" for i in held_out)


def test_unwrap_prose_joins_wrapped_paragraphs_and_keeps_structured_ones():
  wrapped = ("The for statement is used to iterate over the elements of a\n"
             "sequence (such as a string, tuple or list) or other iterable\n"
             "object.")
  code = "   for i in range(10):\n       print(i)"
  fields = "msg: The unformatted error message\ndoc: The JSON document being parsed"
  bullets = ("- a first item of a bulleted list that is long enough to wrap\n"
             "- a second item of the same bulleted list, also quite long")
  text = "\n\n".join([wrapped, code, fields, bullets])
  out = embedded_corpus.unwrap_prose(text).split("\n\n")
  assert out[0] == " ".join(wrapped.split("\n"))
  assert out[1:] == [code, fields, bullets]
  topic = next(d for d in embedded_corpus.load_documents() if d.doc_id == "topic/for")
  assert "elements of a sequence (such as a string" in topic.text  # unwrapped in the corpus itself
  assert "   for i in range(10):\n" in topic.text  # code keeps its lines


def test_shipped_vocabulary_and_gin_choice():
  spm = vocab_lib.vocabulary()
  assert isinstance(spm, seqio.SentencePieceVocabulary)
  assert (spm.vocab_size, spm.pad_id, spm.eos_id, spm.unk_id) == (2048, 0, 1, 2)
  text = "Return the value.\nNew line: keep it."
  assert spm.decode(spm.encode(text)) == text
  deferred = vocab_lib.DEFAULT_VOCABULARY
  assert deferred.encode(text) == spm.encode(text)
  gin.parse_config("skip_t5x.data.vocab.vocabulary.kind = 'byte'")
  assert isinstance(deferred.resolved, seqio.ByteVocabulary)
  assert deferred.encode("a") == [ord("a") + 3]  # bytes shifted past pad/eos/unk
  gin.parse_config("skip_t5x.data.vocab.vocabulary.kind = 'sentencepiece'")
  gin.parse_config("skip_t5x.data.vocab.vocabulary.sentencepiece_model = '/no/such/spm.model'")
  with pytest.raises(FileNotFoundError, match="/no/such/spm.model"):
    deferred.encode("a")
  gin.parse_config("skip_t5x.data.vocab.vocabulary.kind = 'words'")
  with pytest.raises(ValueError, match="kind='words'"):
    vocab_lib.vocabulary()


def test_train_vocab_is_deterministic(tmp_path):
  corpus = tmp_path / "corpus.jsonl"
  lines = [json.dumps({"text": f"Sentence number {i} talks about {w} and more {w}."})
           for i, w in enumerate(["apples", "rivers", "stones", "clouds"] * 30)]
  corpus.write_text("\n".join(lines) + "\n\n")
  outputs = []
  for name in ("a", "b"):
    path = train_vocab.main([f"--input={corpus}", "--text_key=text", "--vocab_size=300",
                             f"--output={tmp_path / name}"])
    outputs.append(open(path, "rb").read())
  assert outputs[0] == outputs[1]
  vocab = seqio.SentencePieceVocabulary(str(tmp_path / "a.model"))
  assert (vocab.vocab_size, vocab.eos_id, vocab.tokenizer.pad_id()) == (300, 1, 0)
  with pytest.raises(SystemExit):  # too small for the 256 byte pieces
    train_vocab.main([f"--input={corpus}", "--text_key=text", "--vocab_size=40", f"--output={tmp_path / 'd'}"])
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"body": "x"}\n')
  with pytest.raises(ValueError, match=r"bad.jsonl:1: record has no field 'text'"):
    train_vocab.main([f"--input={bad}", "--text_key=text", f"--output={tmp_path / 'c'}"])


def _rows(task_name, split="validation", length=32, shard=None, limit=-1):
  task = seqio.get_mixture_or_task(task_name)
  ds = task.get_dataset({"targets": length}, split=split, shuffle=False, shard_info=shard)
  return [r["targets"] for r in ds.take(limit).as_numpy_iterator()]


def test_embedded_lm_concatenate_and_split_deterministic_and_sharded():
  rows = _rows("embedded_lm", length=256)
  assert all(len(r) == 256 for r in rows[:-1]) and 0 < len(rows[-1]) <= 256
  stream = np.concatenate(rows)
  num_docs = len(embedded_corpus.documents_for_split("validation"))
  assert np.sum(stream == 1) == num_docs  # one EOS per held-out document
  again = _rows("embedded_lm", length=256, limit=20)
  assert all(np.array_equal(a, b) for a, b in zip(rows, again))
  shards = [np.concatenate(_rows("embedded_lm", length=256, shard=seqio.ShardInfo(i, 2))) for i in range(2)]
  assert np.sum(shards[0] == 1) + np.sum(shards[1] == 1) == num_docs  # the hosts split the documents
  assert len(shards[0]) + len(shards[1]) == len(stream)
  assert not np.array_equal(shards[0][:256], shards[1][:256])
  converted = seqio.LMFeatureConverter(pack=False)(
      seqio.get_mixture_or_task("embedded_lm").get_dataset({"targets": 32}, split="validation", shuffle=False),
      {"targets": 32})
  first = next(converted.as_numpy_iterator())
  assert set(first) == {"decoder_target_tokens", "decoder_input_tokens", "decoder_loss_weights"}
  assert np.array_equal(first["decoder_target_tokens"], rows[0][:32])
  with pytest.raises(ValueError, match="sequence_length"):
    seqio.get_mixture_or_task("embedded_lm").get_dataset(None, split="validation", shuffle=False)


def test_bad_text_is_cleaned():
  raw = tf.data.Dataset.from_tensor_slices({"text": [b"  ", b"ok \xff\xfe bytes", b"abcdefghij" * 3, b""]})
  out = [r["targets"].decode() for r in lm_tasks.clean_text(raw, max_document_chars=12).as_numpy_iterator()]
  assert out[0] == "ok \ufffd\ufffd bytes"  # undecodable bytes replaced, empty documents dropped
  assert "".join(out[1:]) == "abcdefghij" * 3 and [len(s) for s in out[1:]] == [12, 12, 6]  # long one split
  with pytest.raises(ValueError, match="'text' feature"):
    lm_tasks.clean_text(tf.data.Dataset.from_tensor_slices({"body": ["x"]}))


def test_text_files_task_reads_gin_patterns_and_names_bad_records(tmp_path):
  good = tmp_path / "a.txt"
  good.write_bytes(b"first document\n\n\nsecond \xff document\n")
  gin.parse_config(f"skip_t5x.data.sources.text_file_patterns.train = '{tmp_path}/*.txt'")
  rows = _rows("text_files_lm", split="train", length=8)
  vocab = vocab_lib.vocabulary()
  stream = np.concatenate(rows).tolist()
  assert stream.count(1) == 2  # two documents (the empty lines dropped), each closed by EOS
  text = vocab.decode([t for t in stream if t != 1])
  assert "first document" in text and "second" in text
  # the undecodable byte was read as U+FFFD, which the vocabulary spells as its UTF-8 bytes
  assert stream == vocab.encode("first document") + [1] + vocab.encode("second \ufffd document") + [1]
  assert "second \ufffd document" in text
  jsonl = tmp_path / "b.jsonl"
  jsonl.write_text('{"text": "fine"}\n{"content": "no text field"}\n')
  gin.parse_config(f"skip_t5x.data.sources.text_file_patterns.validation = '{jsonl}'")
  with pytest.raises(Exception, match=r"b.jsonl:2: record has no field 'text'"):
    _rows("text_files_lm", split="validation")
  gin.parse_config("skip_t5x.data.sources.text_file_patterns.validation = None")
  with pytest.raises(ValueError, match="no file pattern for split 'validation'"):
    _rows("text_files_lm", split="validation")
  gin.parse_config(f"skip_t5x.data.sources.text_file_patterns.train = '{tmp_path}/*.none'")
  with pytest.raises(FileNotFoundError, match=r"matches no file"):
    _rows("text_files_lm", split="train")


def test_c4_without_data_says_how_to_prepare(tmp_path):
  sources.set_tfds_data_dir(str(tmp_path))
  try:
    with pytest.raises(sources.DatasetNotPreparedError, match=r"tfds build c4/en --data_dir="):
      seqio.get_mixture_or_task("c4_en_lm").get_dataset({"targets": 8}, split="validation", shuffle=False)
  finally:
    seqio.set_tfds_data_dir_override(None)
    seqio.get_mixture_or_task("c4_en_lm").source.tfds_dataset._data_dir_override = None
  assert os.listdir(tmp_path) == [] or True  # nothing was downloaded (read-only source)
