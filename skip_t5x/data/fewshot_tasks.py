"""The 1-shot evaluation suite: one seqio Task per row of fewshot_suite.tsv, and its mixtures.

Task names are `fewshot_1shot_<task>` (e.g. `fewshot_1shot_boolq`), with the single split 'validation' (which
reads the table's eval_split; the table's shot_split feeds the exemplar pool). Mixtures:
`fewshot_1shot_paper24` (in_paper24 = yes), `fewshot_1shot_all29`, `fewshot_1shot_nlg`, `fewshot_1shot_nlu`.
The TFDS data directory is the gin knob `skip_t5x.data.sources.set_tfds_data_dir.data_dir`; a dataset missing
from it is a DatasetNotPreparedError that says how to prepare it. Generation tasks say how many tokens to decode
(TaskSpec.max_decode_length; `max_decode_length(name)` for a task or mixture).
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import os
from typing import Callable, Dict, List, Optional

import seqio

from skip_t5x.data import fewshot, metrics, prompts_dialogue, prompts_nlg, prompts_nlu, rank_classification
from skip_t5x.data import sources
from skip_t5x.data import vocab as vocab_lib
from skip_t5x.data.prompt_items import Formatter

SUITE_TSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fewshot_suite.tsv")
TASK_PREFIX = "fewshot_1shot_"
EVAL_SPLIT = "validation"
SHOT_SPLIT = "shot"
MIXTURES = ("fewshot_1shot_paper24", "fewshot_1shot_all29", "fewshot_1shot_nlg", "fewshot_1shot_nlu")
DEFAULT_DECODE_LENGTH = 32


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """How one suite task is built and scored; `primary_metric` is the number the summary table reports."""

  name: str
  kind: str  # 'NLG' (generation: greedy or beam search, DecodeConfig) or 'NLU' (rank classification)
  tfds_name: str = ""
  eval_split: str = ""
  shot_split: str = ""
  in_paper24: bool = False
  formatter: Optional[Formatter] = None
  length_normalize: bool = True  # NLU only
  metric_fn: Optional[Callable] = None
  answer_fn: Callable[[str], str] = prompts_nlg.first_line  # NLG only
  targets_with_context: bool = False  # NLG only: metric targets carry the passage too (LAMBADA's chance)
  primary_metric: str = "accuracy"
  manual_download: bool = False
  registered_name: str = ""  # the seqio task name when it is not TASK_PREFIX + name
  max_decode_length: int = DEFAULT_DECODE_LENGTH  # NLG only: generated tokens that hold the longest answers

  @property
  def task_name(self) -> str:
    return self.registered_name or TASK_PREFIX + self.name


_ACC = functools.partial(rank_classification.accuracy, length_normalize=True)
_ACC_RAW = functools.partial(rank_classification.accuracy, length_normalize=False)

# Per-task decisions the table leaves to code: formatter, scoring variant, metric, and the reported number.
_CODE_SPECS: Dict[str, dict] = {
    "trivia_qa": dict(formatter=prompts_nlg.trivia_qa, metric_fn=metrics.trivia_qa_metric,
                      primary_metric="exact_match"),
    "natural_questions": dict(formatter=prompts_nlg.natural_questions, metric_fn=metrics.exact_match_metric,
                              primary_metric="exact_match"),
    "web_questions": dict(formatter=prompts_nlg.web_questions, metric_fn=metrics.exact_match_metric,
                          primary_metric="exact_match"),
    "squad_v2": dict(formatter=prompts_nlg.squad_v2, metric_fn=metrics.squad_metrics, primary_metric="f1",
                     answer_fn=prompts_nlg.squad_v2_answer, max_decode_length=48),
    "lambada": dict(formatter=prompts_nlg.lambada, metric_fn=metrics.lambada_metric, max_decode_length=16,
                    answer_fn=prompts_nlg.first_word, primary_metric="exact_match", targets_with_context=True),
    "drop": dict(formatter=prompts_nlg.drop, metric_fn=metrics.drop_metrics, primary_metric="f1"),
    # QuAC answers are extracted spans of up to ~30 words, CoQA's free-form answers up to ~20.
    "quac": dict(formatter=prompts_dialogue.quac, metric_fn=metrics.f1_metric, primary_metric="f1",
                 max_decode_length=96),
    "coqa": dict(formatter=prompts_dialogue.coqa, metric_fn=metrics.f1_metric, primary_metric="f1",
                 max_decode_length=64),
    "hellaswag": dict(formatter=prompts_nlu.hellaswag, metric_fn=_ACC),
    "story_cloze": dict(formatter=prompts_nlu.story_cloze, metric_fn=_ACC, manual_download=True),
    # Partial scoring: every candidate scores the same continuation, so normalization changes nothing.
    "winograd": dict(formatter=prompts_nlu.winograd, metric_fn=_ACC_RAW, length_normalize=False),
    "winogrande": dict(formatter=prompts_nlu.winogrande, metric_fn=_ACC_RAW, length_normalize=False),
    "piqa": dict(formatter=prompts_nlu.piqa, metric_fn=_ACC),
    "arc_easy": dict(formatter=prompts_nlu.arc, metric_fn=_ACC),
    "arc_challenge": dict(formatter=prompts_nlu.arc, metric_fn=_ACC),
    "openbookqa": dict(formatter=prompts_nlu.openbookqa, metric_fn=_ACC),
    "race_m": dict(formatter=prompts_nlu.race, metric_fn=_ACC),
    "race_h": dict(formatter=prompts_nlu.race, metric_fn=_ACC),
    "boolq": dict(formatter=prompts_nlu.boolq, metric_fn=_ACC),
    "cb": dict(formatter=prompts_nlu.cb, metric_fn=_ACC),
    "copa": dict(formatter=prompts_nlu.copa, metric_fn=_ACC_RAW, length_normalize=False),
    "rte": dict(formatter=prompts_nlu.rte, metric_fn=_ACC),
    "wic": dict(formatter=prompts_nlu.wic, metric_fn=_ACC),
    "wsc": dict(formatter=prompts_nlu.wsc, metric_fn=_ACC),
    "multirc": dict(formatter=prompts_nlu.multirc, metric_fn=rank_classification.f1a, length_normalize=False,
                    primary_metric="f1a"),
    "record": dict(formatter=prompts_nlu.record, metric_fn=rank_classification.record_metrics,
                   length_normalize=False),
    "anli_r1": dict(formatter=prompts_nlu.anli, metric_fn=_ACC),
    "anli_r2": dict(formatter=prompts_nlu.anli, metric_fn=_ACC),
    "anli_r3": dict(formatter=prompts_nlu.anli, metric_fn=_ACC),
}


# TFDS versions the prompts were written against (tensorflow-datasets 4.9.10); seqio needs explicit versions.
TFDS_VERSIONS = {
    "trivia_qa": "1.1.0", "natural_questions_open": "1.0.0", "web_questions": "1.0.0", "squad": "3.0.0",
    "lambada": "1.0.0", "drop": "2.0.0", "quac": "1.0.0", "coqa": "1.0.0", "hellaswag": "1.1.0",
    "story_cloze": "1.0.0", "wsc273": "1.0.0", "winogrande": "1.2.0", "piqa": "1.0.0", "ai2_arc": "1.0.0",
    "openbookqa": "0.1.0", "race": "2.0.0", "super_glue": "1.0.2", "anli": "0.1.0",
}


def versioned(tfds_name: str) -> str:
  """'super_glue/boolq' -> 'super_glue/boolq:1.0.2' (names that already carry a version are kept)."""
  if ":" in tfds_name:
    return tfds_name
  family = tfds_name.split("/")[0]
  if family not in TFDS_VERSIONS:
    raise ValueError(f"no pinned TFDS version for {tfds_name!r}; add it to fewshot_tasks.TFDS_VERSIONS")
  return f"{tfds_name}:{TFDS_VERSIONS[family]}"


def _shot_split(raw: str) -> str:
  """'test (excluding the evaluated example)' -> 'test'."""
  return raw.split("(")[0].strip()


def load_suite(path: str = SUITE_TSV) -> List[TaskSpec]:
  """The table's rows merged with the code-side decisions; every row must have both."""
  with open(path, encoding="utf-8") as f:
    rows = list(csv.DictReader(f, delimiter="\t"))
  names = [r["task"] for r in rows]
  if sorted(names) != sorted(_CODE_SPECS):
    raise ValueError(f"{path}: tasks {sorted(set(names) ^ set(_CODE_SPECS))} are in only one of the table "
                     "and fewshot_tasks._CODE_SPECS")
  specs = []
  for row in rows:
    if row["kind"] not in ("NLG", "NLU"):
      raise ValueError(f"{path}: task {row['task']!r} has kind {row['kind']!r}, expected NLG or NLU")
    specs.append(TaskSpec(name=row["task"], kind=row["kind"], tfds_name=versioned(row["tfds"]),
                          eval_split=row["eval_split"], shot_split=_shot_split(row["shot_split"]),
                          in_paper24=row["in_paper24"].strip().lower() == "yes", **_CODE_SPECS[row["task"]]))
  return specs


SUITE: Dict[str, TaskSpec] = {spec.name: spec for spec in load_suite()}
# Every registered 1-shot task (suite and embedded), by seqio task name: what the summary table reads.
SPECS_BY_TASK_NAME: Dict[str, TaskSpec] = {}


def max_decode_length(mixture_or_task_name: str, default: int = DEFAULT_DECODE_LENGTH) -> int:
  """Tokens to generate for a 1-shot task (its TaskSpec.max_decode_length), or for a mixture the most any of its
  generation tasks needs; `default` for tasks without a spec and mixtures without generation tasks."""
  if mixture_or_task_name in SPECS_BY_TASK_NAME:
    spec = SPECS_BY_TASK_NAME[mixture_or_task_name]
    return spec.max_decode_length if spec.kind == "NLG" else default
  if mixture_or_task_name in seqio.MixtureRegistry.names():
    tasks = seqio.get_mixture_or_task(mixture_or_task_name).tasks
    lengths = [max_decode_length(t.name, default) for t in tasks
               if t.name in SPECS_BY_TASK_NAME and SPECS_BY_TASK_NAME[t.name].kind == "NLG"]
    return max(lengths) if lengths else default
  return default


def preprocessors_for(spec: TaskSpec, one_shot) -> list:
  """The preprocessor chain of a 1-shot task: build prompts, (expand candidates,) tokenize, trim prompts."""
  if spec.kind == "NLG":
    return [one_shot, fewshot.tokenize_with_pretokenized, fewshot.truncate_inputs_left]
  return [one_shot, rank_classification.expand_candidates, fewshot.tokenize_with_pretokenized,
          rank_classification.add_target_token_count, fewshot.truncate_inputs_left]


def register_one_shot_task(spec: TaskSpec, source: seqio.DataSource, shot_dataset_fn,
                           max_items=None) -> seqio.Task:
  """Registers `spec.task_name` over `source` (whose 'validation' split is evaluated)."""
  one_shot = fewshot.make_one_shot_preprocessor(spec.task_name, spec.formatter, shot_dataset_fn, max_items)
  if spec.kind == "NLG":
    postprocess_fn = fewshot.generation_postprocessor(spec.answer_fn, spec.targets_with_context)
  else:
    postprocess_fn = rank_classification.postprocess
  if spec.task_name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(spec.task_name)
  SPECS_BY_TASK_NAME[spec.task_name] = spec
  return seqio.TaskRegistry.add(
      spec.task_name,
      source=source,
      preprocessors=preprocessors_for(spec, one_shot),
      output_features=vocab_lib.output_features(with_inputs=True),
      postprocess_fn=postprocess_fn,
      metric_fns=[spec.metric_fn],
      shuffle_buffer_size=None,
  )


def register_tfds_task(spec: TaskSpec) -> seqio.Task:
  source = sources.PreparedTfdsSource(
      spec.tfds_name, splits={EVAL_SPLIT: spec.eval_split, SHOT_SPLIT: spec.shot_split},
      manual_download=spec.manual_download)
  return register_one_shot_task(
      spec, source, shot_dataset_fn=lambda: source.get_dataset(split=SHOT_SPLIT, shuffle=False))


def register_mixture(name: str, tasks: List[str]) -> None:
  if name in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove(name)
  seqio.MixtureRegistry.add(name, tasks, default_rate=1.0)


def register_all() -> None:
  for spec in SUITE.values():
    register_tfds_task(spec)
  specs = list(SUITE.values())
  register_mixture("fewshot_1shot_paper24", [s.task_name for s in specs if s.in_paper24])
  register_mixture("fewshot_1shot_all29", [s.task_name for s in specs])
  register_mixture("fewshot_1shot_nlg", [s.task_name for s in specs if s.kind == "NLG"])
  register_mixture("fewshot_1shot_nlu", [s.task_name for s in specs if s.kind == "NLU"])


register_all()
