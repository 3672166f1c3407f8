"""SeqIO data: vocabularies, pretraining corpora (with an embedded default) and the 1-shot evaluation suite.

`import skip_t5x.data.tasks` registers every task and mixture; see docs/data.md.
"""
