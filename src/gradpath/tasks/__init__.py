"""Tasks: what to learn (loss, target assignment), how to read the output (post-processing) and how to score it.

Each task is a sub-package (``segment``: YOLOv5-seg style detection + instance segmentation, the paper's §5
experiments). The engine knows none of them; a command composes a task, a model and the engine.
"""
