"""Paper experiments: the rows of the paper's tables and how to measure them (``gradpath reproduce``)."""
