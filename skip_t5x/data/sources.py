"""seqio data sources of raw text: the embedded corpus, text/JSONL files (gin-given), and TFDS read-only.

Each yields examples {'text': tf.string}. Bad records are handled where they are read: undecodable bytes are
replaced (U+FFFD), empty lines dropped; a JSONL record that is not JSON or lacks the text field is an error that
names the file and line.
"""
from __future__ import annotations

import glob
import json
from typing import Iterator, List, Mapping, Optional, Sequence

import gin
import numpy as np
import seqio
import tensorflow as tf

from skip_t5x.data import embedded_corpus

TEXT_FORMATS = ("auto", "text", "jsonl")


# ----------------------------------------------------------------------------------------------- embedded corpus
def embedded_text_dataset(split: str, shuffle_files: bool, seed: Optional[int] = None) -> tf.data.Dataset:
  """{'text', 'doc_id'} per document of the embedded corpus's `split`, in corpus order (seqio shuffles later)."""
  del shuffle_files, seed  # one in-memory "file"; order is deterministic
  docs = embedded_corpus.documents_for_split(split)
  return tf.data.Dataset.from_tensor_slices(
      {"text": [d.text for d in docs], "doc_id": [d.doc_id for d in docs]})


def embedded_source() -> seqio.FunctionDataSource:
  return seqio.FunctionDataSource(embedded_text_dataset, splits=embedded_corpus.SPLITS)


# ------------------------------------------------------------------------------------------------ text/JSONL files
@gin.configurable
def text_file_patterns(train: Optional[str] = None, validation: Optional[str] = None,
                       file_format: str = "auto", text_key: str = "text") -> dict:
  """Gin knob for the `text_files_lm` task: glob patterns per split, format and JSONL text field.

  file_format 'auto' reads *.jsonl / *.json files as JSON lines and everything else as one document per line.
  """
  if file_format not in TEXT_FORMATS:
    raise ValueError(f"text_file_patterns.file_format must be one of {TEXT_FORMATS}, got {file_format!r}")
  return {"train": train, "validation": validation, "file_format": file_format, "text_key": text_key}


def _is_jsonl(path: str, file_format: str) -> bool:
  if file_format == "auto":
    return path.endswith((".jsonl", ".json", ".jsonl.gz"))
  return file_format == "jsonl"


def parse_text_record(path: str, line_number: int, raw: bytes, jsonl: bool, text_key: str) -> Optional[str]:
  """The document of one line: the line itself (text) or its `text_key` field (JSONL); None when it has none."""
  line = raw.decode("utf-8", errors="replace").strip()
  if not line:
    return None  # empty lines carry no text
  if not jsonl:
    return line
  try:
    record = json.loads(line)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}:{line_number}: not valid JSON ({e.msg})") from None
  if not isinstance(record, dict) or text_key not in record:
    keys = sorted(record) if isinstance(record, dict) else type(record).__name__
    raise ValueError(f"{path}:{line_number}: record has no field {text_key!r} (has {keys})")
  text = record[text_key]
  if text is None:
    return None
  return text if isinstance(text, str) else str(text)


def read_text_records(path: str, file_format: str, text_key: str) -> Iterator[str]:
  """Documents of one file: non-empty lines (text) or the `text_key` field of each JSON line."""
  jsonl = _is_jsonl(path, file_format)
  with tf.io.gfile.GFile(path, "rb") as f:
    for line_number, raw in enumerate(f, 1):
      text = parse_text_record(path, line_number, raw, jsonl, text_key)
      if text is not None:
        yield text


class TextFilesSource(seqio.DataSource):
  """Text or JSONL files whose glob patterns come from gin (`text_file_patterns`) when the data is read.

  Files are the shards: with at least as many files as hosts each host reads its own files
  (files[index::num_shards]); otherwise seqio shards the examples. Lines are read by tf.data (TextLineDataset)
  and parsed by a stateless function, so the position of an iterator over them can be checkpointed.
  """

  def __init__(self):
    super().__init__(splits=("train", "validation"), caching_permitted=True)

  @property
  def supports_arbitrary_sharding(self) -> bool:
    return False

  def list_shards(self, split: str) -> Sequence[str]:
    pattern = text_file_patterns()[split]
    if not pattern:
      raise ValueError(
          f"text_files_lm: no file pattern for split {split!r}; bind "
          f"skip_t5x.data.sources.text_file_patterns.{split} = 'path/*.txt' (or .jsonl) in gin")
    files: List[str] = sorted(tf.io.gfile.glob(pattern)) if "://" in pattern else sorted(glob.glob(pattern))
    if not files:
      raise FileNotFoundError(f"text_files_lm: pattern {pattern!r} (split {split!r}) matches no file")
    return files

  def get_dataset(self, split: str = "train", shuffle: bool = True, seed: Optional[int] = None,
                  shard_info: Optional[seqio.ShardInfo] = None, *, sequence_length=None, use_cached=False,
                  num_epochs=1) -> tf.data.Dataset:
    del sequence_length, use_cached, num_epochs
    files = list(self.list_shards(split))
    if shard_info:
      files = files[shard_info.index::shard_info.num_shards]
    if shuffle:
      files = [files[i] for i in np.random.RandomState(seed or 0).permutation(len(files))]
    options = text_file_patterns()
    text_key = options["text_key"]

    def parse(path: bytes, line_number, raw: bytes, jsonl) -> bytes:
      text = parse_text_record(path.decode(), int(line_number), raw, bool(jsonl), text_key)
      return (text or "").encode("utf-8")

    def lines_of(path, jsonl):
      compression = tf.where(tf.strings.regex_full_match(path, r".*\.gz"), "GZIP", "")
      lines = tf.data.TextLineDataset(path, compression_type=compression).enumerate(start=1)
      return lines.map(lambda i, raw: tf.numpy_function(parse, [path, i, raw, jsonl], tf.string, stateful=False))

    jsonl_flags = [_is_jsonl(path, options["file_format"]) for path in files]
    paths = tf.data.Dataset.from_tensor_slices((tf.constant(files, tf.string), tf.constant(jsonl_flags, tf.bool)))
    texts = paths.flat_map(lines_of).filter(lambda text: tf.strings.length(text) > 0)
    return texts.map(lambda text: {"text": tf.ensure_shape(text, [])})

  def num_input_examples(self, split: str) -> Optional[int]:
    return None


# ---------------------------------------------------------------------------------------------------------- TFDS
class DatasetNotPreparedError(FileNotFoundError):
  """A TFDS dataset is not in the data directory; the message says how to prepare it."""


def _tfds_data_dir() -> str:
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  from seqio import utils as seqio_utils  # pylint: disable=import-outside-toplevel

  override = seqio_utils._get_data_dir_override(None)  # pylint: disable=protected-access
  return override or tfds.core.constants.DATA_DIR


class PreparedTfdsSource(seqio.TfdsDataSource):
  """A TfdsDataSource that never downloads: a missing dataset is a DatasetNotPreparedError naming the dataset,
  the data directory and the command that prepares it. The data directory is the gin knob
  `skip_t5x.data.sources.set_tfds_data_dir.data_dir` (or seqio's override)."""

  def __init__(self, tfds_name: str, splits: Mapping[str, str], manual_download: bool = False):
    super().__init__(tfds_name=tfds_name, splits=dict(splits), read_only=True)
    self._manual_download = manual_download

  def _not_prepared(self, error: Exception) -> DatasetNotPreparedError:
    name = self.tfds_dataset.name
    data_dir = self.tfds_dataset.data_dir or _tfds_data_dir()
    manual = (" It needs a manual download first: see "
              f"https://www.tensorflow.org/datasets/catalog/{name.split('/')[0].split(':')[0]}"
              if self._manual_download else "")
    return DatasetNotPreparedError(
        f"TFDS dataset {name!r} is not prepared in data_dir={data_dir!r} ({type(error).__name__}: "
        f"{str(error)[:200]}). Prepare it on a machine with internet access with "
        f"`tfds build {name.split(':')[0]} --data_dir={data_dir}` (then copy the folder), or point "
        f"`skip_t5x.data.sources.set_tfds_data_dir.data_dir` at a directory that has it.{manual}")

  def get_dataset(self, split: Optional[str] = None, shuffle: bool = True, seed: Optional[int] = None,
                  shard_info: Optional[seqio.ShardInfo] = None, **kwargs) -> tf.data.Dataset:
    try:
      return super().get_dataset(split=split, shuffle=shuffle, seed=seed, shard_info=shard_info, **kwargs)
    except (AssertionError, FileNotFoundError, tf.errors.NotFoundError) as e:
      raise self._not_prepared(e) from e

  def num_input_examples(self, split: str) -> Optional[int]:
    try:
      return super().num_input_examples(split)
    except Exception:  # pylint: disable=broad-except  (unknown size: seqio then skips its in-memory cache)
      return None

  def list_shards(self, split: str) -> Sequence[str]:
    try:
      return super().list_shards(split)
    except Exception:  # pylint: disable=broad-except  (unprepared or mocked: shard the examples instead)
      return [split]


@gin.configurable
def set_tfds_data_dir(data_dir: Optional[str] = None) -> Optional[str]:
  """Points every TFDS-backed task at `data_dir` (seqio's global override); None keeps TFDS's default."""
  if data_dir:
    seqio.set_tfds_data_dir_override(data_dir)
  return data_dir
