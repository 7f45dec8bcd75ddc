"""Predictions from the registered champion with ONNX Runtime: no torch, no Lightning.

`pipeline.predict.model.Predictor.load(cfg, ref="champion")` resolves an alias or version
of the registered model, fetches the ONNX graph and preprocessing spec that evaluate logged
with its run (artifact path `predictor/`, cached locally by name and version) and predicts
texts. Import nothing heavy here: the CLI imports these modules lazily.
"""
