"""The evaluate stage's parts: metrics, the TF-IDF baseline, plots, the model registry, ONNX export.

Each module is a pure function or a thin wrapper over the library that does the job
(scikit-learn, matplotlib, MLflow, torch.onnx/onnxruntime); `pipeline.stages.evaluate` wires
them to files.
"""
