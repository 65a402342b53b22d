"""Everything torch (effects; the only package that imports torch): ``data`` (populations,
tokenization, batches), ``synthetic``, ``models``, ``weights``, ``train`` (the one training loop,
DP-SGD a wrap of it), ``infer``, ``grad_norm``, ``runtime`` (a worker process's torch settings)
and ``bench``. Modules elsewhere import these lazily, so ``import farm`` stays light.
"""
