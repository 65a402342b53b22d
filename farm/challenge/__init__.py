"""Challenge trees on disk (effects): ``tree`` reads and writes MICO's layout (seeds, solutions,
weights checked without unpickling), ``submission`` the predictions and the zip, ``score_tree``
scores a predictions tree against its solutions.
"""
