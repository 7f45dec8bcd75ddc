"""Classifier networks, each built by Hydra from `conf/model/<name>.yaml` (`net._target_`).

Every network takes `num_labels` and says which inputs it reads through `input_kind`, an
`InputKind` (pipeline/train/inputs.py): `EMBEDDING` (cached sentence vectors) or `TOKENS`
(input_ids, attention_mask).
"""
