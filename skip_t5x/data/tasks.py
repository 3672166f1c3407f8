"""Importing this module registers every seqio task and mixture of the project.

- Pretraining (features {'targets'}): `embedded_lm`, `text_files_lm`, `c4_en_lm` (lm_tasks.py).
- 1-shot suite (features {'inputs', 'targets'}): `fewshot_1shot_<task>` and the mixtures `fewshot_1shot_paper24`,
  `fewshot_1shot_all29`, `fewshot_1shot_nlg`, `fewshot_1shot_nlu` (fewshot_tasks.py).
- Offline 1-shot tasks: `embedded_1shot_lambada`, `embedded_1shot_continuation`, mixture `embedded_fewshot`
  (embedded_eval.py).
"""
from skip_t5x.data import embedded_eval  # noqa: F401  (registers on import)
from skip_t5x.data import fewshot_tasks  # noqa: F401
from skip_t5x.data import lm_tasks  # noqa: F401
