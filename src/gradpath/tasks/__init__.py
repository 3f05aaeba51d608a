"""Tasks: what to learn (data, targets, loss), how to read the output (post-processing) and how to score it.

Each task is a sub-package (``segment``: YOLOv5-seg style detection + instance segmentation, the paper's Sec. 5
experiments; ``classify``: image classification, its Table 2) that registers its task class in
``gradpath.tasks.registry``. The engine knows none of them; ``gradpath.runner`` composes a task, a model and the
engine into a run. See docs/ARCHITECTURE.md, "Adding a task".
"""
