"""Training and evaluation of seq2seq models: configs, data, the loop, DDP, BLEU/chrF evaluation.

`seq2seq train CONFIG.yaml` and `seq2seq evaluate` dispatch to `training.train` and
`training.evaluate`; `training.train.train_from_config` is the Python entry point.
"""
