"""Text clean-up shared by the prompt formats: sentence punctuation, capitalization, word marking, HellaSwag's
WikiHow artefacts. Pure string functions (no TFDS types).
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

_FINAL_PUNCTUATION = tuple(".!?")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-z])")
_BRACKET_TAG = re.compile(r"\[.*?\]")
_SPACES = re.compile(r" {2,}")

# Words that are capitalized only because they start a sentence (after the WSC273 builder's normalize_cap, which
# covers The/His/My/Her/Their/An/A).
_CASE_FOLLOWS_POSITION = frozenset(
    "the a an his her my their our its your this that these those some one".split())
# Pronouns of WSC273 whose referent takes a possessive ("his" -> "the man's").
_POSSESSIVE_PRONOUNS = frozenset("his my our their its your whose".split())
# After "her", these words mean "her" is an object ("thanked her for"), not a determiner ("her daughter").
_AFTER_OBJECT_HER = frozenset(
    "to for and but or so because as at in on by with from that than when if up out back down away off over into "
    "again too very about after before since until while".split())


def with_final_period(sentence: str) -> str:
  """'the language was peeled down' -> 'the language was peeled down.' (kept when it already ends a sentence)."""
  sentence = sentence.strip()
  if not sentence or sentence.endswith(_FINAL_PUNCTUATION):
    return sentence
  return sentence + "."


def capitalize_sentences(text: str) -> str:
  """Upper-cases a lower-case letter that starts the text or follows '.', '!' or '?' and whitespace."""
  return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def hellaswag_clean(text: str) -> str:
  """HellaSwag's common preprocessing: ' [title]' ends a sentence, other [tags] (WikiHow's [header], [step],
  [substeps]) are removed, runs of spaces collapsed."""
  text = text.strip().replace(" [title]", ". ")
  text = _BRACKET_TAG.sub("", text)
  return _SPACES.sub(" ", text).strip()


def lower_first(phrase: str) -> str:
  """COPA's alternative continued mid-sentence: 'The man left.' -> 'the man left.'; the pronoun I and acronyms
  ('FBI') keep their case."""
  phrase = phrase.strip()
  first = phrase.split(" ", 1)[0]
  if first == "I" or first.startswith("I'") or (len(first) > 1 and first.isupper()):
    return phrase
  return phrase[:1].lower() + phrase[1:]


def option_in_place_of(option: str, pronoun: str, next_word: str = "") -> str:
  """A Winograd option as it reads in the pronoun's place. A leading function word takes the pronoun's case
  ('The city councilmen' mid-sentence -> 'the city councilmen'; 'the man' at a sentence start -> 'The man');
  names keep theirs. A possessive pronoun makes the option possessive ('his' -> "the man's")."""
  option = " ".join(option.split())
  first, _, rest = option.partition(" ")
  if first.lower() in _CASE_FOLLOWS_POSITION:
    first = first.lower() if pronoun[:1].islower() else first.capitalize()
  option = f"{first} {rest}" if rest else first
  if is_possessive(pronoun, next_word):
    option += "'" if option.endswith("s") else "'s"
  return option


def is_possessive(pronoun: str, next_word: str) -> bool:
  """Whether the pronoun is a possessive determiner; 'her' is one when a noun-like word follows it."""
  pronoun = pronoun.lower()
  if pronoun in _POSSESSIVE_PRONOUNS:
    return True
  if pronoun != "her":
    return False
  word = next_word.strip().lower()
  return bool(word) and word[0].isalpha() and word.rstrip(".,;:!?") not in _AFTER_OBJECT_HER


def mark_word(text: str, index: int, span: str) -> Optional[str]:
  """Wraps `span` in asterisks where it starts at word `index` of `text` (words split on whitespace), as GPT-3
  marks WSC's pronoun: ('... because they ran away.', 7, 'they') -> '... because *they* ran away.'. When the word
  there is not `span`, the occurrence of `span` nearest to `index` is marked; None if there is none."""
  words = text.split()
  n = len(span.split())
  matches = [i for i in range(len(words) - n + 1) if _starts_with_span(words[i:i + n], span)]
  if not matches:
    return None
  i = min(matches, key=lambda m: (abs(m - index), m))
  joined = " ".join(words[i:i + n])
  marked = f"*{joined[:len(span)]}*{joined[len(span):]}"
  return " ".join(words[:i] + [marked] + words[i + n:])


def _starts_with_span(words: Sequence[str], span: str) -> bool:
  joined = " ".join(words)
  if not joined.lower().startswith(span.lower()):
    return False
  rest = joined[len(span):]
  return not rest or not rest[0].isalnum()  # 'he' must not match 'her'
