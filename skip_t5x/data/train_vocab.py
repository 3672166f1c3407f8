"""Trains a SentencePiece model for seqio (pad=0, eos=1, unk=2, no bos), deterministically.

    python -m skip_t5x.data.train_vocab                       # the shipped model, from the embedded train split
    python -m skip_t5x.data.train_vocab --input='data/*.txt' --vocab_size=32000 --output=/tmp/spm32k
    python -m skip_t5x.data.train_vocab --input='data/*.jsonl' --text_key=text --output=/tmp/spm

Training text is split into paragraphs (blank-line separated) and cut to --max_sentence_chars; a newline is a
user-defined piece so prompts keep their line structure. Byte fallback spells any character outside the pieces as
its UTF-8 bytes (256 of the vocab_size ids), so no text maps to <unk>; the identity normalizer leaves text as
written, so decode(encode(text)) == text for any text without leading, trailing or doubled spaces. One thread and
a fixed input order make the result byte-identical from run to run.
"""
from __future__ import annotations

import argparse
import glob
import io
import os
import sys
from typing import Iterable, Iterator, List, Optional, Sequence

import sentencepiece as spm

from skip_t5x.data import embedded_corpus
from skip_t5x.data import sources
from skip_t5x.data import vocab as vocab_lib

MIN_VOCAB_SIZE = 300  # pad, eos, unk, newline, the 256 byte pieces, and a few dozen learned pieces


def paragraphs(texts: Iterable[str], max_chars: int) -> Iterator[str]:
  """Non-empty paragraphs of each text, each cut into pieces of at most `max_chars` characters."""
  for text in texts:
    for para in text.split("\n\n"):
      para = para.strip()
      for start in range(0, len(para), max_chars):
        piece = para[start:start + max_chars].strip()
        if piece:
          yield piece


def read_files(pattern: str, text_key: Optional[str]) -> Iterator[str]:
  """Lines of text files, or the `text_key` field of JSONL files, in sorted file order."""
  files = sorted(glob.glob(pattern))
  if not files:
    raise FileNotFoundError(f"--input={pattern!r} matches no file")
  for path in files:
    if text_key is None:
      yield from sources.read_text_records(path, "text", "text")
    else:
      yield from sources.read_text_records(path, "jsonl", text_key)


def train(sentences: Iterable[str], vocab_size: int, model_type: str = "unigram",
          character_coverage: float = 0.9995) -> bytes:
  """Returns the serialized SentencePiece model trained on `sentences`."""
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(sentences),
      model_writer=model,
      vocab_size=vocab_size,
      model_type=model_type,
      character_coverage=character_coverage,
      pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
      user_defined_symbols=["\n"],
      byte_fallback=True,
      normalization_rule_name="identity",
      input_sentence_size=0,  # use every sentence: no sampling, so no randomness
      shuffle_input_sentence=False,
      num_threads=1,
      max_sentence_length=1 << 16,
      minloglevel=2,
  )
  return model.getvalue()


def main(argv: Optional[Sequence[str]] = None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--input", default="embedded",
                      help="'embedded' (the embedded corpus's train split) or a glob of .txt/.jsonl files")
  parser.add_argument("--text_key", default=None, help="JSONL field with the text (default: plain text lines)")
  parser.add_argument("--vocab_size", type=int, default=2048)
  parser.add_argument("--model_type", default="unigram", choices=("unigram", "bpe"))
  parser.add_argument("--max_sentence_chars", type=int, default=4000)
  parser.add_argument("--output", default=os.path.join(vocab_lib.ASSETS_DIR, vocab_lib.EMBEDDED_SPM_NAME),
                      help="output prefix; writes PREFIX.model")
  args = parser.parse_args(argv)
  if args.vocab_size < MIN_VOCAB_SIZE:
    parser.error(f"--vocab_size must be at least {MIN_VOCAB_SIZE} (4 special ids + 256 byte pieces + pieces), "
                 f"got {args.vocab_size}")

  if args.input == "embedded":
    texts: Iterable[str] = (d.text for d in embedded_corpus.documents_for_split("train"))
  else:
    texts = read_files(args.input, args.text_key)
  sentences: List[str] = list(paragraphs(texts, args.max_sentence_chars))
  if not sentences:
    raise ValueError(f"--input={args.input!r} holds no text")
  model = train(sentences, args.vocab_size, args.model_type)
  path = args.output + ".model"
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    f.write(model)
  print(f"wrote {path}: {args.vocab_size} pieces from {len(sentences)} paragraphs")
  return path


if __name__ == "__main__":
  main(sys.argv[1:])
