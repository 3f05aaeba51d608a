"""Image classification (the paper's Table 2 classifiers).

``ClassifyTask`` (task.py, registered as ``classify``): data from ``gradpath.data.classify`` (ImageNet-layout
folders or the embedded ``shapes-cls``), cross-entropy with label smoothing; top-1/top-5, per-class accuracy and
the confusion matrix (metrics.py); the confusion-matrix figure (plots.py); the task's command-line part (cli.py).
"""
from gradpath.tasks.classify.task import ClassifyTask

__all__ = ["ClassifyTask"]
