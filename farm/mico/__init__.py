"""The MICO rules as code (pure): ``splits`` rebuilds every model's challenge, training and
membership sets bit-exactly from its seeds; ``scorer`` is MICO's scoring program (TPR at fixed FPR,
AUC, the pooled-score rule).
"""
